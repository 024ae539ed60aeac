"""`nanosora serve`: the OpenAI Videos API (api.py) over a SQLite job store (store.py) and a
pool of generation workers (worker.py), with a web studio at / (studio.html)."""
