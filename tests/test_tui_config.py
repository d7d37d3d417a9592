"""The Config panel driven through Textual's Pilot on the real parts: F2 shows it, a bad value is marked as
it is typed and Ctrl+S then writes nothing, a good one is saved to the file and the running exporter's
sampler takes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Input

from archives_tui.app import ArchivesApp
from exporter.config import Config, load_config
from tests.pilot import quit_app, text_of, until, visible


def write_config(config: Config, path: Path) -> Config:
    """The test's parts in a config file with comments, loaded as the dashboard would load it."""
    path.write_text(f"""# the dashboard's test config
redis:
  url: {config.redis.url}
clickhouse:
  url: {config.clickhouse.url}
cold:
  url: {config.cold.url}
pipeline:
  batch_size: 100
  min_batch_size: 100
  flush_interval: 500ms
  retry_backoff: 50ms
  consumer_name: test-exporter
retention:
  redis_ttl: 7d  # hot tier, as agreed with ops
  payload_sampling_rate: 0.01  # keep it low
""")
    return load_config(str(path), env={})


def test_f2_shows_the_config_a_bad_value_is_refused_and_a_good_one_saved_and_applied(config, tmp_path: Path):
    path = tmp_path / "archives.yaml"
    loaded = write_config(config, path)
    original = path.read_text()

    async def scenario() -> None:
        app = ArchivesApp(loaded)
        async with app.run_test(size=(70, 30)) as pilot:
            await until(pilot, lambda: app.background is not None and app.background.pipeline is not None)
            await pilot.press("f2")
            await pilot.pause(0.2)
            assert visible(app, "#config") and not visible(app, "#status")
            assert str(path) in text_of(app, "#config-where")
            assert isinstance(app.focused, Input) and app.focused.id == "config-redis_ttl"
            assert app.focused.value == "7d" and app.focused.region.width >= 40  # usable at 70 columns

            rate = app.query_one("#config-payload_sampling_rate", Input)
            rate.focus()
            rate.value = ""
            await pilot.press(*"1.5")
            await pilot.pause(0.1)
            assert rate.has_class("-invalid") and visible(app, "#config-error-payload_sampling_rate")
            assert text_of(app, "#config-error-payload_sampling_rate") == (
                "retention.payload_sampling_rate: expected a number between 0 and 1, got 1.5")
            await pilot.press("ctrl+s")
            await pilot.pause(0.3)
            assert text_of(app, "#config-outcome").startswith("Not saved: retention.payload_sampling_rate")
            assert path.read_text() == original and app.background.pipeline.sampler.rate == 0.01

            await pilot.press("backspace", "backspace", "backspace", *"0.5")
            await pilot.pause(0.1)
            assert not rate.has_class("-invalid") and not visible(app, "#config-error-payload_sampling_rate")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "Saved" in text_of(app, "#config-outcome"), timeout=20)
            outcome = text_of(app, "#config-outcome")
            assert f"Saved retention.payload_sampling_rate = 0.5 to {path}." in outcome
            assert "Payload sampling now keeps 0.5" in outcome and "next batch" in outcome
            assert app.background.pipeline.sampler.rate == 0.5 and app.config.retention.payload_sampling_rate == 0.5
            assert load_config(str(path), env={}).retention.payload_sampling_rate == 0.5
            assert "  payload_sampling_rate: 0.5  # keep it low" in path.read_text().splitlines()
            assert "  redis_ttl: 7d  # hot tier, as agreed with ops" in path.read_text().splitlines()

            lifetime = app.query_one("#config-s3_archive_ttl", Input)  # a typo: 1.5 seconds for 7 years
            lifetime.focus()
            lifetime.value = ""
            await pilot.press(*"1.5", "ctrl+s")
            await pilot.pause(0.3)
            said = text_of(app, "#config-outcome")
            assert said.startswith("This keeps less: retention.s3_archive_ttl from 7y to 1.5s") and "again" in said
            assert "s3_archive_ttl" not in path.read_text() and app.config.retention.s3_archive_ttl == 7 * 365 * 86400
            await pilot.press("ctrl+s")  # the same edits again: saved, as said
            await until(pilot, lambda: app.config.retention.s3_archive_ttl == 1.5, timeout=20)
            await pilot.press("backspace", "backspace", "backspace", *"10y", "ctrl+s")  # longer: saved at once
            await until(pilot, lambda: "Saved retention.s3_archive_ttl" in text_of(app, "#config-outcome"), timeout=20)
            assert app.config.retention.s3_archive_ttl == 10 * 365 * 86400

            await pilot.resize_terminal(160, 45)  # wide: the panel in the query's place
            await pilot.pause(0.3)
            assert visible(app, "#config") and visible(app, "#status") and not visible(app, "#query")
            await quit_app(pilot, app)

    asyncio.run(scenario())
