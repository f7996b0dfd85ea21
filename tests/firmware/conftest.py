# The case modules are plain functions shared with MicroPython; test_firmware_cases.py runs them
# (under both interpreters). Keep pytest from collecting them a second time on its own.
collect_ignore_glob = ["cases/*"]
