"""The engine: pull, push, verify. It knows no terminal; it emits progress events."""
