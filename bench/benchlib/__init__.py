"""Support code for bench/harness.py: the Stratus server under test (stratus.py), the fake
Runtime API and the floor/peer launchers (peers.py), host facts and memory readings
(host.py) and statistics (stats.py)."""
