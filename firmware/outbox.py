"""Bounded RAM queue of encoded records waiting for the broker; drops the oldest when full.
A fixed ring of slots, so pushing and popping never grows a list on the heap."""


class Outbox:
    def __init__(self, maxlen=100):
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self._slots = [None] * maxlen
        self._max = maxlen
        self._head = 0
        self._n = 0
        self.dropped = 0  # records lost because the outbox was full (reported in status)

    def __len__(self):
        return self._n

    def push(self, item):
        if self._n == self._max:
            # Full: the oldest record goes; newest data matters most to inspectors.
            self._slots[self._head] = None
            self._head = (self._head + 1) % self._max
            self._n -= 1
            self.dropped += 1
        self._slots[(self._head + self._n) % self._max] = item
        self._n += 1

    def peek(self):
        return self._slots[self._head] if self._n else None

    def pop(self):
        if not self._n:
            raise IndexError("outbox empty")
        item = self._slots[self._head]
        self._slots[self._head] = None
        self._head = (self._head + 1) % self._max
        self._n -= 1
        return item
