"""The NoETL server: the HTTP API over one store (`noetl.server.app.create_app`), run by `serve.serve`.

Nothing is imported here, so that `noetl db init` and workers can use `noetl.server.schema` on a host
without FastAPI.
"""
