"""`edgemon node probe --port/--virtual`: the probe over the board's USB link (mpremote, or the
virtual board), before the node is on any network. The node is stopped, a script builds the node
from /node.json with the board's own modules (as a boot does, minus the loop) and has
firmware/cmdprobe.py read the analyzers; the board is reset after, into the node. Pure here: the
script and the parsing of its answer; the link is boardlink.py or dev/virtualboard.py."""

from __future__ import annotations

import json

MARK = "EDGEMON-PROBE"


def probe_script(analyzer: str | None, root: str = "", board: bool = True) -> str:
    """MicroPython code for the board: one line `MARK <json>` (cmdprobe.sample's answer) or
    `MARK-ERR <reason>`. board: Esp32HW (its watchdog, once armed, resets the board later if the
    reset after the probe does not come); else UnixHW (the virtual board)."""
    hw = ("__import__('hw_esp32').Esp32HW(c)" if board else
          "__import__('hw_unix').UnixHW(c['state_dir']+'/'+c['site']+'/'+c['node'])")
    return "\n".join([
        "from compat import call_once",
        "try:",
        f" c,e=call_once('start','load',{root!r}+'/node.json')",
        " if c is None:",
        f"  print('{MARK}-ERR', e or 'the config was checked just now: run the probe again')",
        " else:",
        "  n=__import__('node').Node(c," + hw + ")",
        f"  print('{MARK}', call_once('cmdprobe','sample',n,{analyzer!r}))",
        "except Exception as x:",
        f" print('{MARK}-ERR', type(x).__name__, x)",
    ]) + "\n"


def parse_answer(output: str) -> dict:
    """The probe's result (as the probe op's ack carries it); ValueError with the board's reason."""
    for line in output.splitlines():
        if line.startswith(MARK + "-ERR"):
            raise ValueError(line[len(MARK) + 5:].strip())
        if line.startswith(MARK + " "):
            return json.loads(line[len(MARK) + 1:])
    raise ValueError("no answer from the probe script: " + (output.strip().splitlines() or ["(nothing)"])[-1][:200])


def run_over_link(port: str | None, virtual, analyzer: str | None) -> dict:
    """Stop the node, run the probe script on the board, reset it; the result, or ClickException."""
    import click

    from .deploy import DeployError

    where = port or f"virtual board {virtual}"
    try:
        if virtual:
            from .dev.virtualboard import VirtualBoardLink

            link, board = VirtualBoardLink(virtual), False
        else:
            from .boardlink import MpremoteLink

            link, board = MpremoteLink(port), True
        link.halt()
        try:
            out = link.run(probe_script(analyzer, link.root, board))
        finally:
            link.reset()  # back into the node, whatever the probe said
        return parse_answer(out)
    except (DeployError, ValueError) as exc:
        raise click.ClickException(f"probe over {where}: {exc}") from None
