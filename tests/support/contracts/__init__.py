"""Contract fakes of the vendor systems the domain adapters speak to: each a real HTTP server on
127.0.0.1 answering the vendor's documented endpoints and error shapes (``server.py`` holds what
they share: authentication, idempotency replay and scripted failures)."""
