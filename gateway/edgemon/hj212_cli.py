"""`edgemon hj212 check`: the HJ 212 codec's face for technicians debugging a platform link;
`edgemon hj212 platform`: a simulated platform to point a site at (edgemon.dev, imported only by that command)."""

from __future__ import annotations

import sys

import click

from .hj212 import VARIANTS, PacketError, parse


@click.group()
def hj212():
    """HJ 212 packets (the bureau platform's protocol)."""


@hj212.command("check")
@click.argument("packets", nargs=-1)
@click.option("--crc", "crc_variant", type=click.Choice(VARIANTS), default="standard", show_default=True,
              help="CRC the link uses: the standard's Appendix A, or the Modbus CRC some platforms use.")
def check(packets, crc_variant):
    """Parse each PACKET (or one per line on stdin when none is given) and print its fields and
    every way it departs from HJ 212-2017; exit 0 when every packet is valid, 1 when any is
    rejected (length, CRC or syntax, with the reason).

    \b
    Examples:
      edgemon hj212 check '##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80'
      tail -f platform.log | edgemon hj212 check --crc modbus
    """
    lines = packets or (ln for ln in sys.stdin)
    total = bad = 0
    for line in lines:
        text = line.rstrip("\r\n") if isinstance(line, str) else line
        if not text.strip():
            continue
        total += 1
        raw = text.encode("utf-8") + b"\r\n"  # a shell argument or a log line has lost its trailer
        short = text if len(text) <= 72 else text[:69] + "..."
        try:
            p = parse(raw, crc_variant)
        except PacketError as e:
            bad += 1
            click.echo(f"REJECTED {short}\n  {e.kind}: {e.reason}")
            continue
        k = p.packet
        click.echo(f"ok {short}")
        click.echo(f"  {k.version}  QN={k.qn or '-'} ST={k.st} CN={k.cn} PW={k.pw or '-'} MN={k.mn} "
                   f"Flag={'-' if k.flag is None else k.flag}{' (reply wanted)' if k.wants_reply else ''}"
                   + (f" PNUM={k.pnum} PNO={k.pno}" if k.pnum is not None else ""))
        for name, value in k.cp.items():
            click.echo(f"  CP {name} = {value}")
        for d in p.deviations:
            click.echo(f"  deviation: {d}")
    if total == 0:
        raise click.UsageError("no packet given (as arguments, or one per line on stdin)")
    if total > 1:
        click.echo(f"{total} packet(s): {total - bad} valid, {bad} rejected")
    sys.exit(1 if bad else 0)


@hj212.command("platform")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="TCP port to listen on (0: a free one, printed at start).")
@click.option("--crc", "crc_variant", type=click.Choice(VARIANTS), default="standard", show_default=True,
              help="CRC the simulated platform expects and sends.")
def platform(host, port, crc_variant):
    """Run a simulated bureau platform (the TCP server of an HJ 212 link) for tests, the demo and a
    site's first connection: it answers uploads with 9014 and prints one line per packet received
    (time, peer, MN, CN, QN, deviations, or why it was refused). Ctrl-C stops it.

    \b
    Example:
      edgemon hj212 platform --port 9001
      (then point the site's forwarder endpoint at 127.0.0.1:9001)
    """
    from .dev.platformsim_cli import serve  # a development tool: imported only when this command runs

    serve(host, port, crc_variant, click.echo)
