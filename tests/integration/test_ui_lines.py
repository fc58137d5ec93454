"""The operator view draws any described line from its file, before any data arrives: a vendor's
two-coater line that no code names, and every shipped line in ``lines/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bench.e2e import pipeline_settings, running_twin
from core import linedesc
from core.localservices import Influxd, Mosquitto
from core.settings import Settings
from tests.integration.test_ui_twin import ARGS, CHROMIUM

pytestmark = pytest.mark.integration
LINES = linedesc.builtin_path().parent

VENDOR_LINE = """
site = "lyon"
area = "electrodes"
line = "l7"
name = "Anode and cathode coating, one formation"

[[steps]]
id = "anode_coater"
kind = "slot_die_coater"
name = "Anode coater (graphite, water)"

[[steps.signals]]
name = "coat_weight"
key = true
unit = "g/m2"
spec_low = 98.0
spec_high = 102.0

[[steps]]
id = "cathode_coater"
kind = "slot_die_coater"
name = "Cathode coater (NMC, NMP)"

[[steps.signals]]
name = "coat_weight"
key = true
unit = "g/m2"

[[steps.signals]]
name = "pump_flow_rate"
key = true
unit = "cm3/s"

[[steps]]
id = "formation"
kind = "formation"
name = "Formation"

[[flow]]
source = "anode_coater"
target = "cathode_coater"
material = "anode roll to stacking"

[[flow]]
source = "cathode_coater"
target = "formation"
material = "cells"
"""


async def _operator_view(browser: Browser, settings: Settings) -> Page:
    """The twin's page, once it has drawn its step cards."""
    page = await browser.new_page(viewport={"width": 1280, "height": 600})
    await page.goto(f"http://127.0.0.1:{settings.twin.port}/")
    await page.locator("#steps .step").first.wait_for(timeout=15_000)
    return page


async def test_a_described_line_is_drawn_as_its_steps_in_flow_order(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    (tmp_path / "vendor.toml").write_text(VENDOR_LINE)
    settings = pipeline_settings(mosquitto.port, influxd.url, tmp_path)
    settings.line_description = tmp_path / "vendor.toml"
    async with running_twin(settings), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await _operator_view(browser, settings)
            cards = page.locator("#steps .step")
            assert await cards.evaluate_all("cs => cs.map(c => c.dataset.step)") == [
                "anode_coater",
                "cathode_coater",
                "formation",
            ]
            assert "Anode and cathode coating" in await page.locator("#line-name").inner_text()
            anode = await page.locator('tr[data-key="anode_coater/coat_weight"]').inner_text()
            assert "98 … 102" in anode and "–" in anode, "its spec limits, and no value yet"
            cathode = await page.locator('.step[data-step="cathode_coater"]').inner_text()
            assert "pump_flow_rate" in cathode and "no data" in cathode
            flows = await page.locator("#steps .flow").all_inner_texts()
            assert [f.split("\n")[-1] for f in flows] == ["anode roll to stacking", "cells"]
        finally:
            await browser.close()


@pytest.mark.parametrize("shipped", sorted(p.stem for p in LINES.glob("*.toml")))
async def test_every_shipped_line_is_drawn_as_the_steps_of_its_description(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, shipped: str
) -> None:
    description = linedesc.load(LINES / f"{shipped}.toml")
    settings = pipeline_settings(mosquitto.port, influxd.url, tmp_path)
    settings.line_description = LINES / f"{shipped}.toml"
    async with running_twin(settings), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await _operator_view(browser, settings)
            drawn = await page.locator("#steps .step").evaluate_all("cs => cs.map(c => c.dataset.step)")
            assert drawn == [step.id for step in description.steps]
            for step in description.steps:
                card = await page.locator(f'.step[data-step="{step.id}"]').inner_text()
                keys = [s.name for s in step.signals if s.key]
                assert all(key in card for key in keys), f"{step.id} shows its key values {keys}"
        finally:
            await browser.close()
