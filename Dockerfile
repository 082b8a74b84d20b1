# One image for every TokenGate role: gateway, agent, dashboard (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY gateway ./gateway
COPY node_agent ./node_agent
COPY dashboard ./dashboard
COPY tokengate ./tokengate
RUN pip install --no-cache-dir . && useradd --create-home tokengate
USER tokengate
# Your task modules: mount or copy them here and name them with --include.
WORKDIR /tasks
ENV PYTHONPATH=/tasks
ENTRYPOINT ["tokengate"]
CMD ["--help"]
