import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import services, tasks
from messaging.models import FanoutJob, Message, MessageHidden
from tests.messaging.conftest import new_group, send_text, stream_events


@pytest.fixture
def big_group(settings, alice, user_factory):
    """A group bigger than the inline fan-out limit, fanned out two members per batch."""
    settings.MESSAGING_INLINE_FANOUT_MAX = 3
    settings.MESSAGING_FANOUT_BATCH = 2
    members = [user_factory() for _ in range(6)]
    conversation_id = new_group(alice, *members)
    (created,) = FanoutJob.objects.filter(event_type="conversation.created")
    services.fanout_job_run(job_id=created.pk)
    assert [len(stream_events(m, "conversation.created")) for m in members] == [1] * 6
    return conversation_id, members


def message_new_counts(users):
    return [len(stream_events(u, "message.new")) for u in users]


@pytest.mark.django_db
def test_big_group_send_returns_before_fan_out_and_keeps_a_durable_job(alice, big_group):
    conversation_id, members = big_group
    # No on_commit callbacks run here: the job row is the promise.
    response = send_text(alice, conversation_id, "to all")
    assert response.status_code == 201
    assert message_new_counts([alice]) == [1]  # the sender's own devices hear of it at once
    job = FanoutJob.objects.get(event_type="message.new")
    assert job.finished_at is None and str(job.message_id) == response.json()["id"]  # it points at the message
    assert message_new_counts(members) == [0] * 6


@pytest.mark.django_db
def test_fan_out_task_reaches_every_member_once_even_when_rerun(alice, big_group,
                                                                django_capture_on_commit_callbacks):
    conversation_id, members = big_group
    with django_capture_on_commit_callbacks(execute=True):
        message = send_text(alice, conversation_id, "to all").json()
    assert message_new_counts(members) == [1] * 6
    assert message_new_counts([alice]) == [1]
    assert stream_events(members[0], "message.new")[0][1] == message
    job = FanoutJob.objects.get(event_type="message.new")
    assert job.finished_at is not None
    assert tasks.fanout.delay(job.pk).get() == 0  # a redelivered task does nothing twice
    assert message_new_counts(members) == [1] * 6


@pytest.mark.django_db
def test_fan_out_interrupted_mid_way_resumes_without_duplicates(alice, big_group):
    conversation_id, members = big_group
    send_text(alice, conversation_id, "to all")
    job = FanoutJob.objects.get(event_type="message.new")
    assert services.fanout_job_run(job_id=job.pk, max_batches=1) == 2  # "worker killed" after one batch
    assert sum(message_new_counts(members)) == 2
    assert services.fanout_job_run(job_id=job.pk) == 4
    assert services.fanout_job_run(job_id=job.pk) == 0
    assert message_new_counts(members) == [1] * 6


@pytest.mark.django_db
def test_jobs_of_one_conversation_run_in_order(alice, big_group):
    conversation_id, members = big_group
    send_text(alice, conversation_id, "first")
    send_text(alice, conversation_id, "second")
    second = FanoutJob.objects.order_by("pk").last()
    services.fanout_job_run(job_id=second.pk)  # runs the first job before its own
    for member in members:
        assert [d["text"] for _, d in stream_events(member, "message.new")] == ["first", "second"]


@pytest.mark.django_db
def test_fan_out_skips_members_who_blocked_the_sender(alice, big_group, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    import contacts.selectors

    conversation_id, members = big_group
    blocker = members[3]
    monkeypatch.setattr(contacts.selectors, "blockers_of",
                        lambda *, user_id, candidate_ids: {str(blocker.user.pk)} & set(candidate_ids),
                        raising=False)
    with django_capture_on_commit_callbacks(execute=True):
        send_text(alice, conversation_id)
    assert message_new_counts([blocker]) == [0]
    assert sum(message_new_counts(members)) == 5
    assert MessageHidden.objects.filter(user=blocker.user).count() == 1


@pytest.mark.django_db
def test_big_group_edits_fan_out_too(alice, big_group, django_capture_on_commit_callbacks):
    conversation_id, members = big_group
    with django_capture_on_commit_callbacks(execute=True):
        message = send_text(alice, conversation_id, "typo").json()
        alice.client.patch(f"/api/v1/messages/{message['id']}", {"text": "fixed"}, format="json")
    assert [len(stream_events(m, "message.edited")) for m in members] == [1] * 6
    assert len(stream_events(alice, "message.edited")) == 1


@pytest.mark.django_db
def test_sweep_re_enqueues_jobs_whose_task_was_lost(alice, big_group):
    conversation_id, members = big_group
    send_text(alice, conversation_id)
    job = FanoutJob.objects.get(event_type="message.new")
    FanoutJob.objects.filter(pk=job.pk).update(created_at=job.created_at.replace(year=2020))
    assert tasks.fanout_sweep.delay().get() == 1
    assert message_new_counts(members) == [1] * 6
    assert tasks.fanout_sweep.delay().get() == 0


@pytest.mark.django_db
def test_small_group_needs_no_job(alice, bob, carol):
    conversation_id = new_group(alice, bob, carol)
    send_text(alice, conversation_id)
    assert not FanoutJob.objects.exists()
    assert Message.objects.get().conversation_id == uuid.UUID(conversation_id)


@pytest.mark.django_db
def test_sweep_forgets_jobs_finished_long_ago(alice, big_group, django_capture_on_commit_callbacks):
    conversation_id, _ = big_group
    with django_capture_on_commit_callbacks(execute=True):
        send_text(alice, conversation_id)
    assert FanoutJob.objects.filter(finished_at__isnull=False).count() == 2
    tasks.fanout_sweep.delay().get()
    assert FanoutJob.objects.count() == 2  # finished just now: kept
    FanoutJob.objects.update(finished_at=timezone.now() - timedelta(days=2))
    tasks.fanout_sweep.delay().get()
    assert not FanoutJob.objects.exists()


@pytest.mark.django_db
def test_a_poison_job_is_given_up_after_its_attempts_and_no_longer_blocks_the_conversation(alice, big_group,
                                                                                             settings):
    settings.MESSAGING_FANOUT_MAX_ATTEMPTS = 3
    conversation_id, members = big_group
    send_text(alice, conversation_id, "poison")
    send_text(alice, conversation_id, "fine")
    poison, fine = FanoutJob.objects.filter(event_type="message.new").order_by("pk")
    FanoutJob.objects.filter(pk=poison.pk).update(exclude_user_ids=["not-a-user-id"])  # fails every time
    for _ in range(3):
        with pytest.raises(Exception, match="not-a-user-id"):
            services.fanout_job_run(job_id=fine.pk)  # jobs of a conversation run in order: the poison first
    poison.refresh_from_db()
    assert poison.attempts == 3 and poison.failed_at is not None and "ValidationError" in poison.last_error
    FanoutJob.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert services.fanout_jobs_stalled() == [fine.pk]  # the sweep leaves the poison job alone
    services.fanout_job_run(job_id=fine.pk)
    fine.refresh_from_db()
    assert fine.finished_at is not None
    assert [[e[1]["text"] for e in stream_events(m, "message.new")] for m in members] == [["fine"]] * 6
