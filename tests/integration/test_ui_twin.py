"""The twin's web page in headless Debian Chromium against the whole loop (real services and parts).

It loads, draws the line from its description (steps in flow order, key values against their spec limits
with a trend), shows live values that change, shows the pump-wear alert and acknowledges it, and a what-if
returns predictions with their intervals, flags an extrapolation and says what it cannot predict yet; the
README's screenshot (docs/ui.png) is
taken by it with LINETWIN_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from bench.e2e import pipeline_settings, running_twin, upstream
from core.localservices import Influxd, Mosquitto

pytestmark = pytest.mark.integration
TOKEN = "ui-test-token"

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ui.png"
UPDATE_SCREENSHOT = "LINETWIN_UPDATE_SCREENSHOT"  # =1 refreshes the README's picture from this run


async def test_ui_shows_live_state_acknowledges_an_alert_and_runs_a_whatif(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        mosquitto.port, influxd.url, tmp_path, scenario="pump-wear", speed=150.0, tick_s=2.0, api_token=TOKEN
    )
    with contextlib.ExitStack() as plant_side:
        async with running_twin(settings), async_playwright() as playwright:
            plant_side.enter_context(upstream(settings))  # after the twin: it hears the first reports
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(f"http://127.0.0.1:{settings.twin.port}/")

            flow = page.locator('tr[data-key="coater1/pump_flow"] td.num')
            await page.wait_for_function(
                "sel => /\\d/.test(document.querySelector(sel)?.textContent ?? '')",
                arg='tr[data-key="coater1/pump_flow"] td.num',
                timeout=30_000,
            )
            first = await flow.inner_text()
            await page.wait_for_function(
                "([sel, old]) => document.querySelector(sel)?.textContent !== old",
                arg=['tr[data-key="coater1/pump_flow"] td.num', first],
                timeout=15_000,
            )
            assert await page.locator("#live-text").inner_text() == "live"
            cards = page.locator("#steps .step")
            assert await cards.evaluate_all("cs => cs.map(c => c.dataset.step)") == [
                "coater1",
                "calender1",
                "cycler1",
            ], "the steps of the line description, in material-flow order"
            loading = page.locator('tr[data-key="coater1/dry_loading"]')
            assert "19.6 … 20.4" in await loading.inner_text(), "key values stand against their spec limits"
            assert await page.locator('.step[data-step="coater1"] svg.trend polyline').count() >= 1
            assert "coated electrode roll" in await page.locator("#steps .flow").first.inner_text()

            pump_wear = page.locator("tr.alert", has_text="Metering pump wear")
            await pump_wear.locator("button.ack").wait_for(timeout=90_000)
            await page.fill("#token", TOKEN)  # a change needs the API token, typed in once
            await page.locator("#token").dispatch_event("change")
            await pump_wear.locator("button.ack").click()
            await pump_wear.locator("td.state-acknowledged").wait_for(timeout=10_000)

            await page.fill('input[name="pump_flow"]', "70")
            await page.click('#whatif button[type="submit"]')
            await page.locator("#predictions tr.prediction").first.wait_for(timeout=15_000)
            rows = await page.locator("#predictions tr.prediction").all_inner_texts()
            assert any(row.startswith("dry_loading") for row in rows)
            assert all("95 %:" in row for row in rows), "each prediction shows its interval"
            loading = next(row for row in rows if row.startswith("dry_loading"))
            assert "extrapolated" in loading, "70 mL/min lies far outside the calibrated pump flow"
            assert "spec 19.6 … 20.4" in loading, "the what-if judges against the described spec"
            reasons = await page.locator("#unavailable li").all_inner_texts()
            assert any(r.startswith("cell_capacity: cell model calibrating") for r in reasons), reasons
            assert await page.locator("#chart circle").count() == len(rows)
            assert await page.locator("#whatif-error").inner_text() == ""

            screenshot = (
                README_SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) == "1" else tmp_path / "ui.png"
            )
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.read_bytes().startswith(b"\x89PNG")
            await browser.close()
