"""The v1 wire contract (docs/ARCHITECTURE.md section 3) as seen by the gateway: topics, data records and
batches, node status, node events. Pure: bytes in, values or a ContractError with a human reason out.

  model.py       the vocabulary: patterns, kinds, flag letters, bounds, the parsed values, ContractError
  topics.py      edge/v1/{site}/{node}/{kind} -> Topic
  jsonvalues.py  strict JSON decoding shared by every payload
  records.py     data: a record or a signed batch -> records; split_signature
  notices.py     status (and the last will) and events
"""

from .model import (CLOCKS, CN_MAX, EVENT_MAX_BYTES, FLAGS, ID_RE, KINDS, PARAM_RE, SEQ_MAX, SIG_RE, TOPIC_PREFIX,
                    TS_MAX_MS, TS_MIN_MS, ContractError, Event, Reading, Record, Status, Topic)
from .notices import parse_event, parse_status
from .records import parse_data, split_signature
from .topics import parse_topic

__all__ = ["CLOCKS", "CN_MAX", "EVENT_MAX_BYTES", "FLAGS", "ID_RE", "KINDS", "PARAM_RE", "SEQ_MAX", "SIG_RE",
           "TOPIC_PREFIX", "TS_MAX_MS", "TS_MIN_MS", "ContractError", "Event", "Reading", "Record", "Status",
           "Topic", "parse_data", "parse_event", "parse_status", "parse_topic", "split_signature"]
