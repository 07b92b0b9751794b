"""A dev server just started answers on its port before its frontend is healthy: connect retries."""

from typing import Any

import pytest

from app import temporal
from app.config import Settings
from app.temporal import ServerUnavailable, connect_once_healthy

NOT_YET = ServerUnavailable("Cannot reach Temporal at localhost:7233 (Frontend is not healthy yet)")


async def test_connect_retries_while_the_frontend_warms_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[Any] = [NOT_YET, NOT_YET, "client"]
    calls: list[dict[str, Any]] = []

    async def connect(settings: Settings, **options: Any) -> Any:
        calls.append(options)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(temporal, "connect", connect)
    assert "client" == await connect_once_healthy(Settings.from_env(), create_key=True)
    assert [{"create_key": True}] * 3 == calls


async def test_connect_gives_up_once_the_start_timeout_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def connect(settings: Settings, **options: Any) -> Any:
        raise NOT_YET

    monkeypatch.setattr(temporal, "connect", connect)
    with pytest.raises(ServerUnavailable, match="not healthy yet"):
        await connect_once_healthy(Settings.from_env(), within=0.3)
