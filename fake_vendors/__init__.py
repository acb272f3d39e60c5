"""Fakes of the vendor APIs the warehouse polls (Atomic's batched analytics API, Altis's events
endpoint), on loopback, behaving as the vendor documents say: the tests start them with fixtures,
and `python -m fake_vendors atomic|altis` serves sample data to try the pullers by hand."""
