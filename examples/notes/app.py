"""The notes example: a second, tiny FastAPI service behind taskgate that trusts only the gateway.

Its routes and who may call them are the gateway's policy (examples/notes/policy.yaml); the app itself only
verifies the gateway's assertion, in one line, with `taskgate_assertion`. Run it with
`NOTES_INTERNAL_SECRET=… uvicorn examples.notes.app:app --port 9000` (docs/upstreams.md). Notes live in
memory: it is an example of the wiring, not of storage.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskgate_assertion.fastapi import Caller, TrustGateway


class NotesSettings(BaseSettings):
    """NOTES_INTERNAL_SECRET: the gateway's GATEWAY_INTERNAL_SECRET (the same value)."""

    model_config = SettingsConfigDict(env_prefix="NOTES_")
    internal_secret: SecretStr = Field(min_length=32)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class Note(BaseModel):
    text: str
    author: str
    role: str | None


settings = NotesSettings()  # read from the environment; a missing or short secret stops the app
app = FastAPI(title="notes (taskgate example)")
# trust:start
gateway = TrustGateway([settings.internal_secret.get_secret_value()], "notes", claim_headers=["X-Org-Role"])
# trust:end
_notes: dict[str, list[Note]] = {}
WRITERS = ("owner", "admin")


# routes:start
@app.get("/orgs/{org_id}/notes")
async def list_notes(org_id: str, caller: Annotated[Caller, Depends(gateway.user)]) -> list[Note]:
    return _notes.get(org_id, [])


@app.post("/orgs/{org_id}/notes", status_code=201)
async def add_note(org_id: str, note: NoteIn, caller: Annotated[Caller, Depends(gateway.user)]) -> Note:
    role = caller.claims.get("X-Org-Role")  # copied by the gateway from the token; absent if the token has none
    if role not in WRITERS or caller.user is None:
        raise HTTPException(403, detail="only an owner or admin of the organisation may add notes")
    added = Note(text=note.text, author=caller.user, role=role)
    _notes.setdefault(org_id, []).append(added)
    return added


@app.get("/status")
async def status(_caller: Annotated[Caller, Depends(gateway.request)]) -> dict[str, str]:
    return {"status": "ok"}


# routes:end
