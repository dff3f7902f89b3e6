"""Plain helpers the tests share; fixtures stay in ``tests/conftest.py``.

Import what a test needs from the module that holds it (nothing is re-exported here, so the
light modules do not pull in Pillow, httpx servers or threads):

- ``moments``: ``T0`` (the suite's "now" at start) and ``iso`` (an instant as the API writes it).
- ``database``: ``PG_URL``, ``empty`` (every row gone, default policies back), ``count_rows``.
- ``api``: the ``Api`` client with a key per role, ``job_body``, ``CUSTOMER``, ``bearer``.
- ``problems``: ``assert_problem`` (an RFC 9457 problem with its status and code) and
  ``assert_no_server_errors``.
- ``workflow``: a technician's taps (``tap``, ``send_status``), the timeline (``events_of``,
  ``event_types``), and factories: ``assign``, ``assigned_job``, ``dispatched_job``,
  ``on_site_job``, ``completed_job``, ``add_outlet``.
- ``parts``: a stockroom (locations, a catalogue) and its stock: ``stockroom``, ``set_stock``,
  ``stock_of``, ``ask``.
- ``invariants``: capacity and stock bookkeeping checked against the database.
- ``concurrency``: ``run_together`` (calls released at the same instant in threads).
- ``photos``: real images with and without EXIF, uploads, ``half_an_hour_on_site``.
- ``servers``: real uvicorn processes; ``receiver``: a real webhook receiver.
"""
