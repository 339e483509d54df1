"""The simulation harness: a PBX simulator driven by scenario files or generated traffic, a fake
3CX that plays them over HTTP and WebSocket, the one-process runner behind `callbridge scenario
run` and `callbridge demo`, and the checker of expected webhooks. The services never import it:
the monitor sees the simulator only through its driver protocol (services/monitor/driver.py)."""
