"""The spam score, and the throttle it drives for new accounts that message many strangers.

A *stranger*, for a sender, is the other member of a direct conversation who
has never written in it and does not have the sender in their address book.
A *first contact* is a send into a direct conversation where the sender has
not written before.

    score = strangers written to in the last 24 h
          + SPAM_REPORT_WEIGHT x distinct users with an open report on them (30 days)
          + sends in the last hour / SPAM_SENDS_PER_POINT

An account younger than SPAM_NEW_ACCOUNT_HOURS whose score has reached
SPAM_SCORE_LIMIT cannot make further first contacts with strangers: that send
gets 429 `rate_limited` (Retry-After: SPAM_RETRY_AFTER_SECONDS). Everything
else goes through: replies, conversations where the other side has written,
contacts, groups, and every send of an established account. The score and the
decision are plain functions (`spam_score`, `spam_decision`); the send path
calls `sends_screen` once per batch (MESSAGING_SEND_SCREEN).

Cost on the send path: nothing for established accounts (one date comparison).
For a new account, a direct conversation it may write in is remembered per
process, so only its first send into each conversation costs queries (up to
seven, once per batch).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from accounts.models import User
from contacts.models import BookEntry
from core import metrics
from core.errors import ApplicationError, RateLimited
from messaging.integrations import ScreenedSend
from messaging.models import Conversation, ConversationType, Membership, Message
from moderation.models import Report, ReportStatus

logger = logging.getLogger(__name__)

# (sender id, conversation id) pairs known to pass: the sender has written there before, the
# other side wrote or knows the sender, or the conversation is not a direct one.
_KNOWN_MAX = 100_000
_known: OrderedDict[tuple[str, str], None] = OrderedDict()
# Senders' account creation times (they never change), the most recent _AGES_MAX of them: so the
# send path tells established accounts (no screening at all) without a query.
_AGES_MAX = 200_000
_ages: OrderedDict[str, datetime] = OrderedDict()


@dataclass(frozen=True)
class SpamScore:
    strangers_24h: int
    reporters_30d: int
    sends_1h: int

    @property
    def value(self) -> float:
        return (self.strangers_24h + settings.SPAM_REPORT_WEIGHT * self.reporters_30d
                + self.sends_1h / max(1, settings.SPAM_SENDS_PER_POINT))


def new_account_cutoff(now: datetime | None = None) -> datetime | None:
    """An account created after this is new (None: the throttle is off, no account is)."""
    hours = settings.SPAM_NEW_ACCOUNT_HOURS
    return (now or timezone.now()) - timedelta(hours=hours) if hours > 0 else None


def is_new_account(created_at: datetime, *, now: datetime | None = None) -> bool:
    cutoff = new_account_cutoff(now)
    return cutoff is not None and created_at > cutoff


def spam_score(*, user_id: object, now: datetime | None = None) -> SpamScore:
    """The user's score from what they sent and what was reported about them (three queries)."""
    now = now or timezone.now()
    peer_wrote = Message.objects.filter(conversation_id=OuterRef("conversation_id")).exclude(sender_id=user_id)
    strangers = (
        Message.objects.filter(sender_id=user_id, created_at__gte=now - timedelta(hours=24),
                               conversation__type=ConversationType.DIRECT)
        .exclude(Exists(peer_wrote))
        .values("conversation_id").distinct().count()
    )
    reporters = (Report.objects.filter(reported_user_id=user_id, status=ReportStatus.OPEN,
                                       created_at__gte=now - timedelta(days=30))
                 .aggregate(n=Count("reporter_id", distinct=True))["n"])
    sends = Message.objects.filter(sender_id=user_id, created_at__gte=now - timedelta(hours=1)).count()
    return SpamScore(strangers_24h=strangers, reporters_30d=reporters or 0, sends_1h=sends)


def spam_decision(*, score: SpamScore, new_account: bool, first_contact_with_stranger: bool) -> bool:
    """True when the send must be refused."""
    return new_account and first_contact_with_stranger and score.value >= settings.SPAM_SCORE_LIMIT


def _remember(sender_id: str, conversation_id: str) -> None:
    _known[(sender_id, conversation_id)] = None
    _known.move_to_end((sender_id, conversation_id))
    while len(_known) > _KNOWN_MAX:
        _known.popitem(last=False)


def _strangers(*, sender_id: str, conversation_ids: Iterable[str]) -> set[str]:
    """Of these direct conversations (none written in by the sender yet), those whose other
    member never wrote there and does not have the sender in their address book."""
    ids = list(conversation_ids)
    peers = dict(Membership.objects.filter(conversation_id__in=ids).exclude(user_id=sender_id)
                 .values_list("conversation_id", "user_id"))
    wrote = set(Message.objects.filter(conversation_id__in=ids).exclude(sender_id=sender_id)
                .values_list("conversation_id", flat=True).distinct())
    known_by = set(BookEntry.objects.filter(owner_id__in=set(peers.values()), contact_user_id=sender_id)
                   .values_list("owner_id", flat=True))
    return {str(c) for c, peer in peers.items() if c not in wrote and peer not in known_by}


def _account_ages(sender_ids: Iterable[str]) -> dict[str, datetime]:
    """Creation times of these senders (one query for those not remembered)."""
    wanted = set(sender_ids)
    unknown = [s for s in wanted if s not in _ages]
    if unknown:
        for user_id, created_at in User.objects.filter(pk__in=unknown).values_list("pk", "created_at"):
            _ages[str(user_id)] = created_at
    for sender_id in wanted & set(_ages):
        _ages.move_to_end(sender_id)
    while len(_ages) > _AGES_MAX:
        _ages.popitem(last=False)
    return {s: _ages[s] for s in wanted if s in _ages}


def screening_needed(*, sends: Iterable[ScreenedSend]) -> bool:
    """MESSAGING_SEND_SCREEN_NEEDED: False when, as remembered in this process, every send is
    by an established account or into a conversation its new-account sender is known to pass
    (wrote there, was answered, or it is not a direct conversation): the socket's batch then
    skips the screen without a query or a thread hop."""
    cutoff = new_account_cutoff()  # once per batch, not per send
    if cutoff is None:
        return False
    return any((send.sender_id, send.conversation_id) not in _known
               and (send.sender_id not in _ages or _ages[send.sender_id] > cutoff) for send in sends)


def sends_screen(*, sends: list[ScreenedSend]) -> dict[int, ApplicationError]:
    """MESSAGING_SEND_SCREEN: which sends of a batch the spam throttle refuses (index -> error).
    Established accounts cost nothing (their age is remembered); a new account's direct
    conversations are looked up once per batch."""
    now = timezone.now()
    ages = _account_ages({send.sender_id for send in sends})
    new = [send for send in sends if send.sender_id in ages and is_new_account(ages[send.sender_id], now=now)
           and (send.sender_id, send.conversation_id) not in _known]
    direct = {str(c) for c in Conversation.objects.filter(pk__in={s.conversation_id for s in new},
                                                          type=ConversationType.DIRECT).values_list("pk", flat=True)}
    candidates: dict[str, list[ScreenedSend]] = {}
    for send in new:
        if send.conversation_id in direct:
            candidates.setdefault(send.sender_id, []).append(send)
        else:
            _remember(send.sender_id, send.conversation_id)  # groups are never screened (a type never changes)
    refused: dict[int, ApplicationError] = {}
    for sender_id, items in candidates.items():
        conversation_ids = {s.conversation_id for s in items}
        written = {str(c) for c in Message.objects.filter(sender_id=sender_id, conversation_id__in=conversation_ids)
                   .values_list("conversation_id", flat=True).distinct()}
        for conversation_id in written:
            _remember(sender_id, conversation_id)
        fresh = conversation_ids - written
        strangers = _strangers(sender_id=sender_id, conversation_ids=fresh) if fresh else set()
        for conversation_id in fresh - strangers:
            _remember(sender_id, conversation_id)  # the other side wrote, or knows the sender
        if not strangers:
            continue
        score = spam_score(user_id=sender_id, now=now)
        opened: set[str] = set()
        for send in items:
            conversation_id = send.conversation_id
            if conversation_id not in strangers or conversation_id in opened:
                continue
            if spam_decision(score=score, new_account=True, first_contact_with_stranger=True):
                refused[send.index] = RateLimited(
                    "Too many new conversations with people who have not answered; try again later.",
                    retry_after=settings.SPAM_RETRY_AFTER_SECONDS)
                metrics.SPAM_THROTTLED.inc()
            else:
                opened.add(conversation_id)
                _remember(sender_id, conversation_id)  # from now on the sender has written there
                # Counted at once: a batch opening fifty conversations is judged as it goes.
                score = SpamScore(score.strangers_24h + 1, score.reporters_30d, score.sends_1h + 1)
    if refused:
        logger.info("spam throttle refused sends", extra={"event": "spam_throttle", "count": len(refused)})
    return refused


def forget_known() -> None:
    """Tests: start from an empty per-process memory."""
    _known.clear()
    _ages.clear()
