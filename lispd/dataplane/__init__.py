"""The data plane: devices, the C fast path and the asyncio adapter around it."""
