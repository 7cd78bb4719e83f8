"""The async engine: flow and task runners, executors, and the one transition path.

Import what you need from its modules (`durable.engine.flow_runner`, `.executors`): this
package imports nothing itself, so `import durable` stays fast and does not load the store.
"""

from durable.engine import signals, state

__all__ = ["signals", "state"]
