# linetwin: one image for every `twin` subcommand (sim, ingest, serve, ...).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY plant plant
COPY connectors connectors
COPY models models
COPY twin twin
COPY bench bench
COPY cli cli
COPY lines lines
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 linetwin \
    && mkdir -p /var/lib/linetwin && chown linetwin /var/lib/linetwin
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER linetwin
WORKDIR /var/lib/linetwin
EXPOSE 4840 8000 9108
ENTRYPOINT ["twin"]
CMD ["--help"]
