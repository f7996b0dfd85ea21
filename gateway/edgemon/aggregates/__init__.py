"""Minute, hour and day values per site, node and parameter (HJ 212-2017 Appendix D), written to
InfluxDB as the `aggregate` measurement and handed to the HJ 212 forwarder.

  stats.py     the maths (pure): sums of a period, flow weighting, volume and load, flags, validity
  periods.py   period boundaries (pure): minutes, hours, calendar days of a time zone
  store.py     the state on disk (SQLite): sums, record times counted, periods to compute / hand on
  engine.py    records in, computed periods out; late and replayed records recompute their periods
  lines.py     the `aggregate` line protocol
  observer.py  the gateway observer that runs it (observer thread)
"""
