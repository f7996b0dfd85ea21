"""The firmware's MQTT client over TLS (mqtt_tls_link.py), run by test_fw_tls.py under the MicroPython
unix port and under CPython alike: connect to a TLS listener with the CA pinned, subscribe to the
node's cmd topic (beside TOPIC), publish PAYLOAD to TOPIC and wait for what the test's gateway sends
back on cmd (read by maintain(), through the poll), then disconnect. Prints one line: "ok <what arrived>" or
"error <ExceptionType>: <message>"; exit 0 either way (the test reads the line).
Usage: tls_client.py HOST PORT USER PASSWORD CA TOPIC PAYLOAD [CERT KEY] (user "-": none)"""
import sys

a = sys.argv[1:]
import mqtt  # noqa: E402  (firmware/ is on the path the test gives)
import mqttsub  # noqa: E402
import mqtt_tls_link  # noqa: E402
from compat import ticks_ms, ticks_diff  # noqa: E402

tls_cfg = {"ca": a[4]}
if len(a) > 7:
    tls_cfg["cert"] = a[7]
    tls_cfg["key"] = a[8]
got = []
try:
    f = mqtt_tls_link.socket_factory(tls_cfg, a[0], print)
    user = None if a[2] == "-" else a[2]
    c = mqtt.MQTTClient("tls-probe", a[0], int(a[1]), user, None if user is None else a[3],
                        timeout_ms=3000, socket_factory=f)
    c.on_message = lambda t, p: got.append(p)
    c.connect()
    mqttsub.subscribe(c, a[5].rsplit("/", 1)[0] + "/cmd", 1)
    c.publish(a[5], a[6].encode(), 1)
    t0 = ticks_ms()
    while not got and ticks_diff(ticks_ms(), t0) < 2000:
        c.maintain()
    c.disconnect()
    print("ok " + (got[0].decode() if got else "<nothing came back>"))
except Exception as e:
    print("error %s: %s" % (type(e).__name__, str(e).replace("\n", " ")))
