"""The task library: ready-made tasks and flow-building helpers, as Prefect 1's `prefect.tasks`.

Import each from its module (nothing is imported until asked for):

- `durable.tasks.control_flow`: case, switch, ifelse, merge, FilterTask;
- `durable.tasks.shell`: ShellTask (argv lists, a shell only when asked);
- `durable.tasks.sql`: SQLiteQuery, SQLiteScript, DBAPIQuery;
- `durable.tasks.http`: HttpRequest (stdlib; HttpError on a bad status);
- `durable.tasks.sensors`: FileSensor, wait_for (waits that a restart resumes);
- `durable.tasks.notify`: webhook_notifier, email_notifier, slack_notifier (state handlers).

Modules build on the authoring layer (`durable.core`), never on the engine or the store.
See docs/tasks.md.
"""
