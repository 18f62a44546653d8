# crm2stream with its compiled core: built with maturin, run on python:3.11-slim.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl build-essential \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir maturin==1.16.0 && maturin build --release -o /wheels

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl
WORKDIR /work
ENTRYPOINT ["crm2stream"]
