"""Writing one user's archive as a ZIP file, streaming, in flat memory.

Layout of the archive:

    profile.json                          the user's own profile and settings
    contacts.json                         matched contacts (never raw numbers of others)
    wallet/wallet.json                    the wallet's balance and currency
    wallet/transactions.jsonl             every movement of the wallet, oldest first (amounts in cents)
    red_packets/sent.jsonl                the user's red packets: amounts, claims, refunds
    red_packets/claimed.jsonl             the shares the user claimed
    moments.json                          the user's posts with their likes and comments, and the
                                          likes and comments the user left on friends' posts
    conversations/<id>/conversation.json  title, type, members
    conversations/<id>/messages.jsonl     every visible message, oldest first, one per line
    media/<attachment id>.<ext>           attachments of those messages, and the user's uploads
    index.html                            one self-contained page showing it all offline

Messages are read with server-side cursors (`.iterator(chunk_size=...)` in
`exports.sources`) and written straight into the ZIP entry, so a user with a
million messages costs the same memory as one with ten. The page's data is
spooled to a temporary file during the same pass and copied into
`index.html` at the end, because a ZIP can only have one entry open at a time.
"""

from __future__ import annotations

import logging
import mimetypes
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from core.serializers import timestamp
from exports import sources
from exports.index_page import INDEX_HEAD, INDEX_TAIL

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]
PROGRESS_EVERY = 5000  # messages between progress reports (each is one small UPDATE)


def _json_line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


def _page_json(value: Any) -> bytes:
    """JSON safe to embed in a <script> block: no "<" can end the block or open a comment.

    "<" only ever occurs inside JSON strings, where "\\u003c" means the same character.
    """
    return orjson.dumps(value).replace(b"<", b"\\u003c")


# The types the media app stores, with the extension players expect (mimetypes lacks some).
EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp", "image/heic": ".heic",
    "audio/wav": ".wav", "audio/mpeg": ".mp3", "audio/aac": ".aac", "audio/mp4": ".m4a", "audio/ogg": ".ogg",
    "audio/amr": ".amr", "audio/amr-wb": ".awb", "video/mp4": ".mp4", "video/quicktime": ".mov",
}


def media_name(attachment: dict[str, Any]) -> str:
    """The archive path of an attachment: media/<id><ext>, the extension from its type."""
    content_type = (attachment.get("content_type") or "application/octet-stream").split(";")[0].strip().lower()
    extension = EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    return f"media/{attachment['id']}{extension}"


class _Progress:
    def __init__(self, total: int, report: ProgressCallback) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.report = report

    def step(self) -> None:
        self.done += 1
        if self.done % PROGRESS_EVERY == 0:
            # Messages are 95% of the work; media and the page take the rest.
            self.report(min(95, self.done * 95 // self.total))


def archive_write(*, user: User, path: Path, on_progress: ProgressCallback) -> None:
    """Write the user's whole archive to `path` (a local file). Raises OSError when the disk is full."""
    index_limit = settings.EXPORT_INDEX_MAX_MESSAGES
    with tempfile.TemporaryFile(dir=settings.EXPORT_TEMP_DIR or None) as page_data, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        profile = sources.profile(user=user)
        archive.writestr("profile.json", orjson.dumps(profile, option=orjson.OPT_INDENT_2))
        contacts = sources.contacts(user_id=user.pk)
        archive.writestr("contacts.json", orjson.dumps(contacts, option=orjson.OPT_INDENT_2))
        _write_money(archive, user_id=user.pk)

        conversations = list(sources.conversations(user_id=user.pk))
        counts = {c["id"]: sources.message_count(user_id=user.pk, conversation=c) for c in conversations}
        progress = _Progress(sum(counts.values()), on_progress)
        media: dict[str, str] = {}  # attachment id -> archive name
        names = sources.NameBook()

        page_data.write(b'{"generated_at":' + orjson.dumps(timestamp(timezone.now()))
                        + b',"profile":' + _page_json(sources.profile_public(profile))
                        + b',"conversations":[')
        for number, conversation in enumerate(conversations):
            conversation_id = conversation["id"]
            total = counts[conversation_id]
            shown_from = max(0, total - index_limit)
            for member in conversation.get("members", []):
                names.remember(member["user_id"], member.get("display_name", ""))
            public = {key: value for key, value in conversation.items() if not key.startswith("_")}
            archive.writestr(f"conversations/{conversation_id}/conversation.json",
                             orjson.dumps(public, option=orjson.OPT_INDENT_2))
            pages = max(1, -(-total // index_limit))
            header = {**public, "message_count": total, "shown_count": total - shown_from, "pages": pages}
            page_data.write((b"," if number else b"") + _page_json(header)[:-1] + b',"messages":[')
            first_shown = True
            older = _OlderPages(conversation_id=conversation_id, total=total, size=index_limit)
            with archive.open(f"conversations/{conversation_id}/messages.jsonl", "w", force_zip64=True) as lines:
                for position, message in enumerate(
                        sources.messages(user_id=user.pk, conversation=conversation)):
                    attachment = message.get("attachment")
                    if attachment and not message.get("deleted"):
                        message["media"] = media.setdefault(str(attachment["id"]), media_name(attachment))
                    message["sender_name"] = names.name(message.get("sender_id"))
                    lines.write(_json_line(message))
                    if position >= shown_from:
                        page_data.write((b"" if first_shown else b",") + _page_json(message))
                        first_shown = False
                    else:
                        older.add(position, _page_json(message))
                    progress.step()
            older.write_to(archive)
            page_data.write(b"]}")
        page_data.write(b"]")

        moments = sources.moments(user_id=user.pk)
        for moment in moments["posts"]:
            for attachment in moment["attachments"]:
                attachment["media"] = media.setdefault(str(attachment["id"]), media_name(attachment))
            for item in (*moment["likes"], *moment["comments"]):
                item["user_name"] = names.name(item["user_id"])
        archive.writestr("moments.json", orjson.dumps(moments, option=orjson.OPT_INDENT_2))
        page_data.write(b',"moments":' + _page_json(moments["posts"]) + b"}")

        for attachment in sources.own_attachments(user_id=user.pk):
            media.setdefault(str(attachment["id"]), media_name(attachment))
        _write_media(archive, media, on_progress)
        on_progress(97)

        page_data.seek(0)
        with archive.open("index.html", "w", force_zip64=True) as page:
            page.write(INDEX_HEAD)
            shutil.copyfileobj(page_data, page, 1024 * 1024)
            page.write(INDEX_TAIL)


class _OlderPages:
    """The messages older than the page's inline latest EXPORT_INDEX_MAX_MESSAGES, cut into pages of
    that size counted back from the newest (page 1 is the one before the inline page 0) and written
    as `conversations/<id>/page-<n>.js`, each a script that hands its messages to index.html
    (`archivePage(id, n, [...])`): a browser opening index.html from disk may load scripts beside
    it but not fetch files, and only the page the reader asks for is loaded.

    The messages are spooled to a temporary file while messages.jsonl is being written (a ZIP
    has one entry open at a time), so memory stays at one page whatever the conversation's size.
    """

    def __init__(self, *, conversation_id: str, total: int, size: int) -> None:
        self.conversation_id, self.total, self.size = conversation_id, total, size
        self.spool = tempfile.TemporaryFile(dir=settings.EXPORT_TEMP_DIR or None)  # noqa: SIM115 (closed by write_to)
        self.pages: list[tuple[int, int]] = []  # (page, start offset in the spool), oldest first
        self.first = True

    def add(self, position: int, message_json: bytes) -> None:
        page = (self.total - 1 - position) // self.size
        if not self.pages or self.pages[-1][0] != page:
            if self.pages:
                self.spool.write(b"]);\n")
            self.pages.append((page, self.spool.tell()))
            self.spool.write(b"archivePage(" + orjson.dumps(self.conversation_id) + b"," + str(page).encode()
                             + b",[")
            self.first = True
        self.spool.write((b"" if self.first else b",") + message_json)
        self.first = False

    def write_to(self, archive: zipfile.ZipFile) -> None:
        with self.spool:
            if not self.pages:
                return
            self.spool.write(b"]);\n")
            ends = [start for _, start in self.pages[1:]] + [self.spool.tell()]
            for (page, start), end in zip(self.pages, ends, strict=True):
                self.spool.seek(start)
                archive.writestr(f"conversations/{self.conversation_id}/page-{page}.js",
                                 self.spool.read(end - start))


def _write_money(archive: zipfile.ZipFile, *, user_id: object) -> None:
    """The wallet and red packets: small JSON for the balance, JSON lines for the streams of rows."""
    archive.writestr("wallet/wallet.json", orjson.dumps(sources.wallet(user_id=user_id), option=orjson.OPT_INDENT_2))
    for name, rows in (("wallet/transactions.jsonl", sources.wallet_transactions(user_id=user_id)),
                       ("red_packets/sent.jsonl", sources.red_packets_sent(user_id=user_id)),
                       ("red_packets/claimed.jsonl", sources.red_packets_claimed(user_id=user_id))):
        with archive.open(name, "w", force_zip64=True) as lines:
            for row in rows:
                lines.write(_json_line(row))


def _write_media(archive: zipfile.ZipFile, media: dict[str, str], on_progress: ProgressCallback) -> None:
    for attachment_id, name in media.items():
        on_progress(95)  # keeps the heartbeat fresh while large files are copied
        stored = sources.attachment_file(attachment_id=attachment_id)
        if stored is None:
            logger.warning("export: attachment %s has no stored file; skipped", attachment_id)
            continue
        storage, storage_name = stored
        try:
            source: IO[bytes] = storage.open(storage_name, "rb")
        except FileNotFoundError:
            logger.warning("export: attachment %s file is missing; skipped", attachment_id)
            continue
        # Already-compressed media gains nothing from deflate; store it as is.
        with source, archive.open(zipfile.ZipInfo(name, date_time=timezone.now().timetuple()[:6]), "w",
                                  force_zip64=True) as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
