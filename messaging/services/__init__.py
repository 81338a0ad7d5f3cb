"""Writes for messaging, one module per concept; the public functions are importable from here.

Every change and the events it owes users commit in one transaction
(`streams.services.stream_append`), so a crash can never leave a message
without its events. Locks are taken in one order everywhere: conversation
rows (by id), then membership rows, then stream counters (by user id, inside
stream_append), so concurrent writers cannot deadlock.

- `sending`: message_send, message_send_many (the socket's group commit), message_post (server-made)
- `fanout`: big conversations, fanned out in Celery batches
- `push`: the push for a new message
- `conversations`: create, members, join, roles, mute, account deletion
- `invitations`: who may add whom (`group_add`), group invitations and their daily allowance
- `editing`: edit, recall, hide
- `receipts`: read pointer, device acks, delivered pointer, sync
"""

from messaging.models import ADMIN_ROLES
from messaging.services.conversations import (
    conversation_avatar_delete,
    conversation_avatar_set,
    conversation_create,
    conversation_join,
    conversation_mute,
    conversation_update,
    member_remove,
    member_role_set,
    members_add,
    user_messages_erase,
)
from messaging.services.editing import message_delete, message_edit, message_remove
from messaging.services.fanout import fanout_job_open, fanout_job_run, fanout_jobs_prune, fanout_jobs_stalled
from messaging.services.receipts import (
    DeviceAck,
    conversation_read,
    device_ack,
    device_acks_async,
    message_played,
    sync_read,
)
from messaging.services.sending import (
    SendRequest,
    message_post,
    message_send,
    message_send_many,
    message_send_many_async,
)

__all__ = [
    "ADMIN_ROLES",
    "DeviceAck",
    "SendRequest",
    "conversation_avatar_delete",
    "conversation_avatar_set",
    "conversation_create",
    "conversation_join",
    "conversation_mute",
    "conversation_read",
    "conversation_update",
    "device_ack",
    "device_acks_async",
    "fanout_job_open",
    "fanout_job_run",
    "fanout_jobs_prune",
    "fanout_jobs_stalled",
    "member_remove",
    "member_role_set",
    "members_add",
    "message_delete",
    "message_edit",
    "message_played",
    "message_post",
    "message_remove",
    "message_send",
    "message_send_many",
    "message_send_many_async",
    "sync_read",
    "user_messages_erase",
]
