from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q


class Visibility(models.TextChoices):
    EVERYONE = "everyone"
    CONTACTS = "contacts"
    NOBODY = "nobody"


class MomentsWindow(models.TextChoices):
    """How far back friends may page through one's own moments (GET /users/{id}/moments)."""

    ALL = "all"
    SIX_MONTHS = "6m"
    ONE_MONTH = "1m"
    THREE_DAYS = "3d"


class Platform(models.TextChoices):
    ANDROID = "android"
    IOS = "ios"
    WEB = "web"
    DESKTOP = "desktop"


class PushProvider(models.TextChoices):
    FCM = "fcm"
    APNS = "apns"
    WEBPUSH = "webpush"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, phone: str, password: str | None = None, **fields: object) -> User:
        user = self.model(phone=phone, **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, phone: str, password: str | None = None, **fields: object) -> User:
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(phone, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person, identified by a verified phone number (E.164)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # NULL once the account is deleted: the number is erased, the row stays for history.
    phone = models.CharField(max_length=20, unique=True, null=True, blank=True)
    display_name = models.CharField(max_length=64, blank=True, default="")
    about = models.CharField(max_length=140, blank=True, default="")
    avatar_url = models.CharField(max_length=500, blank=True, default="")
    discoverable = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.EVERYONE)
    last_seen_visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.CONTACTS)
    read_receipts = models.BooleanField(default=True)
    message_preview_in_push = models.BooleanField(default=True)
    # Database defaults too: bulk loaders (contacts_seed's COPY) name only the columns they know.
    moments_window = models.CharField(max_length=3, choices=MomentsWindow.choices, default=MomentsWindow.ALL,
                                      db_default=MomentsWindow.ALL)
    # A push for likes and comments on one's own moments (the moment.interaction event comes regardless).
    moments_notifications = models.BooleanField(default=True, db_default=True)
    # Who may put this user straight into a group or broadcast; anyone else sends an invitation.
    group_add = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.CONTACTS,
                                 db_default=Visibility.CONTACTS)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set by staff (moderation): every token is refused and sign-in answers 403 account_suspended.
    suspended_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)

    objects = UserManager()

    USERNAME_FIELD = "phone"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.display_name or str(self.id)


class Device(models.Model):
    """One signed-in app install. Its bearer token is stored only as a SHA-256 digest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=64)
    platform = models.CharField(max_length=8, choices=Platform.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    push_provider = models.CharField(max_length=8, choices=PushProvider.choices, blank=True, default="")
    push_token = models.TextField(blank=True, default="")
    push_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user"], condition=Q(revoked_at__isnull=True), name="device_user_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.platform})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PhoneVerification(models.Model):
    """One OTP sent to a number. Neither the number nor the code is stored in clear."""

    phone_key = models.CharField(max_length=64, db_index=True)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["phone_key", "-created_at"], name="verification_latest_idx")]

    def __str__(self) -> str:
        return f"verification {self.pk}"
