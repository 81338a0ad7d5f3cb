"""Push providers behind one small interface: `send(message) -> Outcome`."""
