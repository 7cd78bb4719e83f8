"""The command palette (ctrl+p) and the go-to palette (`:`): Textual's `CommandPalette`
with our providers. Commands come from the read model (flows, recent runs) and the app
(areas, action log, refresh interval); mutating ones are absent in --read-only mode.
Everything from the database is shown as text, never read as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio.to_thread
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content
from textual.markup import escape

from durable.restarts import RESTARTABLE
from tui.modals import ActionLogScreen
from tui.screens import PollingScreen

if TYPE_CHECKING:
    from durable.store.browse import FlowRow, RunRow
    from tui.app import DurableApp

AREAS = {"flows": "area 1: every flow", "runs": "area 2: every run, newest first",
         "schedules": "area 3: scheduled runs", "workers": "area 4: workers",
         "logs": "area 5: logs and events"}  # fmt: skip
REFRESH_CHOICES = (2.0, 5.0, 10.0)
RECENT_RUNS = 200
"""How many of the newest runs the palette offers by id."""


@dataclass(frozen=True, slots=True)
class Command:
    """One palette command: its text (plain, possibly from the database), what it does,
    and whether it changes anything (then --read-only leaves it out)."""

    text: str
    help: str
    run: Callable[[], object]
    mutating: bool = False


def highlight(matcher: Matcher, text: str) -> Content:
    """The fuzzy match's letters highlighted in `text`, which is never read as markup
    (Matcher.highlight would parse it)."""
    content = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class DurableProvider(Provider):
    """A provider over a list of `Command`s built when the palette opens."""

    DISCOVER: ClassVar[bool] = True
    """Whether its commands are listed before anything is typed."""

    @property
    def durable(self) -> DurableApp:
        from tui.app import DurableApp

        assert isinstance(self.app, DurableApp)
        return self.app

    async def startup(self) -> None:
        self.commands = [
            command for command in await self.build()
            if not (command.mutating and self.durable.read_only)
        ]  # fmt: skip

    async def build(self) -> list[Command]:
        """The commands on offer (may read the database through a thread)."""
        raise NotImplementedError

    async def discover(self) -> Hits:
        if not self.DISCOVER:
            return
        for command in self.commands:
            yield DiscoveryHit(Content(command.text), command.run, text=command.text,
                               help=escape(command.help))  # fmt: skip

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands:
            score = matcher.match(command.text)
            if score > 0:
                yield Hit(score, highlight(matcher, command.text), command.run,
                          text=command.text, help=escape(command.help))  # fmt: skip

    async def read(self, query: Callable[[Any], Any]) -> Any:
        """Read on the app's model in a thread (the palette stays responsive)."""
        return await anyio.to_thread.run_sync(lambda: self.durable.read(query))


class AppCommands(DurableProvider):
    """Areas, the action log and the refresh interval."""

    async def build(self) -> list[Command]:
        app = self.durable
        commands = [Command(mode, AREAS.get(mode, f"area {mode}"), _area(app, mode))
                    for mode in app.MODES]  # fmt: skip
        commands.append(Command("Show action log", "who did what, newest first",
                                app.show_action_log))  # fmt: skip
        for seconds in REFRESH_CHOICES:
            commands.append(Command(f"refresh interval {seconds:g}s",
                                    f"poll the database every {seconds:g} seconds",
                                    _refresh(app, seconds)))  # fmt: skip
        return commands


class FlowCommands(DurableProvider):
    """Per flow: open it, trigger (the form), quick run, pause or resume its schedule."""

    VERBS: ClassVar[bool] = True
    """Whether to offer the verbs, not just opening the flow."""

    async def build(self) -> list[Command]:
        flows: list[FlowRow] = await self.read(lambda model: model.flows())
        app, commands = self.durable, []
        for flow in flows:
            commands.append(Command(f"flow {flow.name}", f"open flow v{flow.version}",
                                    _open_flow(app, flow.name)))  # fmt: skip
            if not self.VERBS:
                continue
            if flow.registered:
                commands += [
                    Command(f"trigger {flow.name}", "custom run: the parameter form",
                            _trigger_form(app, flow), mutating=True),
                    Command(f"quick run {flow.name}", "run now with the defaults",
                            _quick_run(app, flow.name), mutating=True),
                ]  # fmt: skip
            if flow.schedule:
                verb = "resume" if flow.paused else "pause"
                commands.append(Command(f"{verb} schedule {flow.name}", flow.schedule,
                                        _pause(app, flow.name, not flow.paused),
                                        mutating=True))  # fmt: skip
        return commands


class FlowPages(FlowCommands):
    """Flows by name, for the go-to palette."""

    VERBS = False


class RunCommands(DurableProvider):
    """The newest runs by id: open one, or retry a failed one."""

    DISCOVER = False  # hundreds of runs: offered once something is typed

    async def build(self) -> list[Command]:
        runs: list[RunRow] = await self.read(
            lambda model: model.runs(limit=RECENT_RUNS)
        )
        app, commands = self.durable, []
        for run in runs:
            about = f"{run.flow_name} v{run.flow_version} · {run.state}"
            commands.append(Command(f"run {run.id}", about, _open_run(app, run.id)))
            if run.state in RESTARTABLE:
                commands.append(Command(f"retry run {run.id}", about,
                                        _retry(app, run), mutating=True))  # fmt: skip
        return commands


GOTO: tuple[type[Provider], ...] = (AppCommands, FlowPages, RunCommands)
"""What `:` searches: areas, flows by name, runs by id (and the app's commands)."""


class Palette(App[None]):
    """The palette side of `DurableApp`: its providers, `:` and the commands' verbs."""

    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {
        AppCommands,
        FlowCommands,
        RunCommands,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "goto", "Go to", show=False, id="nav.goto"),
    ]
    refresh_every: float

    def action_goto(self) -> None:
        """Open the go-to palette: an area, a run by id, the action log."""
        if not isinstance(self.screen, CommandPalette):
            self.push_screen(CommandPalette(providers=GOTO, placeholder="Go to: an area, "
                                            "run <id>, …"))  # fmt: skip

    def show_action_log(self) -> None:
        """Open the audit log of actions taken through the control API."""
        durable = _durable(self)
        self.push_screen(ActionLogScreen(lambda: durable.read(lambda m: m.actions()),
                                         durable.clock()))  # fmt: skip

    def set_refresh(self, seconds: float) -> None:
        """Poll every `seconds` from now on (screens pick it up when next shown)."""
        self.refresh_every = seconds
        if isinstance(self.screen, PollingScreen):
            self.screen.reschedule()  # the others on their next resume
        self.notify(f"Refreshing every {seconds:g}s", markup=False)


def _durable(app: object) -> DurableApp:
    from tui.app import DurableApp

    assert isinstance(app, DurableApp)
    return app


def _area(app: DurableApp, mode: str) -> Callable[[], object]:
    return lambda: app.run_action(f"area({mode!r})")


def _refresh(app: DurableApp, seconds: float) -> Callable[[], object]:
    return lambda: app.set_refresh(seconds)


def _trigger_form(app: DurableApp, flow: FlowRow) -> Callable[[], object]:
    return lambda: app.open_trigger_form(flow.name, flow.version)


def _quick_run(app: DurableApp, flow_name: str) -> Callable[[], object]:
    return lambda: app.confirm_trigger(flow_name)


def _pause(app: DurableApp, flow_name: str, pause: bool) -> Callable[[], object]:
    return lambda: app.confirm_pause(flow_name, pause=pause)


def _open_flow(app: DurableApp, flow_name: str) -> Callable[[], object]:
    def open_flow() -> None:
        from tui.screens import FlowDetailScreen

        app.push_screen(FlowDetailScreen(flow_name))

    return open_flow


def _open_run(app: DurableApp, run_id: str) -> Callable[[], object]:
    def open_run() -> None:
        from tui.screens import RunDetailScreen

        app.push_screen(RunDetailScreen(run_id))

    return open_run


def _retry(app: DurableApp, run: RunRow) -> Callable[[], object]:
    return lambda: app.confirm_restart(run)
