// Application state (Preact signals) and the one place where events from the stream are applied.
// Nothing here is persisted but the device token, the stream cursor (localStorage) and the outbox
// of unsent messages (sessionStorage: it holds message text, which must not outlive the tab).
import { batch, signal } from "@preact/signals";
import { api, ApiError, onUnauthenticated, token, uuid4 } from "./api";
import { clearStoredCursor, Connection, storedCursor } from "./socket";
import type { Conversation, ExportInfo, Me, Message, PublicUser, Receipts, StreamEvent } from "./types";

export interface ChatState {
  messages: Message[];
  hasMore: boolean;
  loading: boolean;
}

export interface OutboxItem {
  client_id: string;
  conversation_id: string;
  body: Record<string, unknown>;
  state: "queued" | "sending" | "failed";
  error?: string;
  created_at: string;
  /** Local preview of an attachment being sent (never persisted). */
  preview?: { kind: string; url: string };
}

export const signedIn = signal<boolean>(token.get() !== null);
export const booted = signal(false);
export const me = signal<Me | null>(null);
export const conversations = signal<Map<string, Conversation>>(new Map());
export const moreConversations = signal<{ cursor?: string; before?: string } | null>(null);
export const chats = signal<Record<string, ChatState>>({});
export const users = signal<Map<string, PublicUser>>(new Map());
export const presence = signal<Map<string, { state: string; last_seen: string | null }>>(new Map());
export const typing = signal<Record<string, Record<string, number>>>({});
export const receipts = signal<Record<string, Record<string, Receipts>>>({});
export const outbox = signal<OutboxItem[]>(loadOutbox());
export const activeChat = signal<string | null>(null);
export const exportsList = signal<ExportInfo[] | null>(null);
export const announcement = signal<string | null>(null);
export const contactsVersion = signal(0);
export const toast = signal<string | null>(null);
export const signOutReason = signal<string | null>(null);
export const bootError = signal<string | null>(null);

let connection: Connection | null = null;
const OUTBOX_KEY = "mt.outbox";

// Features in their own modules (calls, wallet and red packets) see the frames and events
// they need through these hooks, and forget their state when the user signs out.
type FrameHook = (frame: any) => boolean;
type EventHook = (event: StreamEvent) => void;
const frameHooks: FrameHook[] = [];
const eventHooks: EventHook[] = [];
const resetHooks: Array<() => void> = [];

/** `hook` sees every socket frame first; returning true means it was handled. */
export function addFrameHook(hook: FrameHook): void {
  frameHooks.push(hook);
}

/** `hook` sees every stream event after the store applied it. */
export function addEventHook(hook: EventHook): void {
  eventHooks.push(hook);
}

export function addResetHook(hook: () => void): void {
  resetHooks.push(hook);
}

/** Send a frame on the socket now; false when it is not up. */
export function sendFrame(frame: object): boolean {
  return connection?.send(frame) ?? false;
}

// --- helpers --------------------------------------------------------------------------

export function showToast(text: string): void {
  toast.value = text;
  setTimeout(() => {
    if (toast.value === text) toast.value = null;
  }, 4000);
}

function loadOutbox(): OutboxItem[] {
  try {
    const items = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) ?? "[]") as OutboxItem[];
    return items.map((item) => ({ ...item, state: item.state === "failed" ? "failed" : "queued" }));
  } catch {
    return [];
  }
}

function saveOutbox(items: OutboxItem[]): void {
  outbox.value = items;
  const persisted = items.map(({ preview: _preview, ...rest }) => rest);
  if (persisted.length) sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(persisted));
  else sessionStorage.removeItem(OUTBOX_KEY);
}

function setConversation(conversation: Conversation): void {
  const next = new Map(conversations.value);
  next.set(conversation.id, conversation);
  conversations.value = next;
}

export function sortedConversations(): Conversation[] {
  return [...conversations.value.values()].sort((a, b) => {
    const at = a.last_message?.created_at ?? a.updated_at;
    const bt = b.last_message?.created_at ?? b.updated_at;
    return bt.localeCompare(at);
  });
}

export function userName(userId: string | null | undefined): string {
  if (!userId) return "";
  if (me.value && userId === me.value.id) return "You";
  const user = users.value.get(userId);
  if (!user) {
    void ensureUser(userId);
    return "…";
  }
  return user.display_name || "Deleted account";
}

const userRequests = new Map<string, Promise<void>>();
export function ensureUser(userId: string): Promise<void> {
  if (users.value.has(userId)) return Promise.resolve();
  let pending = userRequests.get(userId);
  if (!pending) {
    pending = api
      .get<PublicUser>(`/users/${userId}`)
      .then((user) => rememberUsers([user]))
      .catch(() => rememberUsers([{ id: userId, display_name: "", about: "", avatar_url: null }]))
      .finally(() => userRequests.delete(userId));
    userRequests.set(userId, pending);
  }
  return pending;
}

/** Re-read a profile (for a fresh last seen when a chat opens). */
export function refreshUser(userId: string): void {
  api.get<PublicUser>(`/users/${userId}`).then((user) => rememberUsers([user])).catch(() => {});
}

export function rememberUsers(list: PublicUser[]): void {
  const next = new Map(users.value);
  for (const user of list) next.set(user.id, { ...next.get(user.id), ...user });
  users.value = next;
}

export function peerOf(conversation: Conversation): string | null {
  if (conversation.type !== "direct" || !me.value) return null;
  const other = conversation.members.find((m) => m.user_id !== me.value!.id);
  return other ? other.user_id : me.value.id;
}

export function conversationTitle(conversation: Conversation | undefined): string {
  if (!conversation) return "";
  if (conversation.type === "direct") {
    const peer = peerOf(conversation);
    return peer === me.value?.id ? "Saved messages" : userName(peer);
  }
  return conversation.title || (conversation.type === "broadcast" ? "Broadcast" : "Group");
}

export function myRole(conversation: Conversation): string | null {
  return conversation.members.find((m) => m.user_id === me.value?.id)?.role ?? null;
}

function pageVisible(): boolean {
  return document.visibilityState === "visible";
}

// --- boot and sign-out ------------------------------------------------------------------

export async function boot(): Promise<void> {
  if (!token.get()) {
    signedIn.value = false;
    return;
  }
  bootError.value = null;
  try {
    const profile = await api.get<Me>("/me");
    me.value = profile;
    rememberUsers([{ id: profile.id, display_name: profile.display_name, about: profile.about, avatar_url: profile.avatar_url }]);
    // A new device starts at the stream's head: the REST snapshot below is newer than it,
    // and events after it are applied on top (idempotently).
    let cursor = storedCursor();
    if (cursor === null) cursor = (await api.get<{ cursor: string }>("/sync/head")).cursor;
    await loadConversations();
    connection = new Connection(
      {
        frame: applyFrame,
        connected: () => flushOutbox(true),
        unauthenticated: () => signedOut("This device was signed out. Sign in again."),
      },
      cursor,
    );
    connection.start();
    booted.value = true;
    void api
      .get<Array<{ message: string }>>("/announcements")
      .then((list) => {
        if (list.length) announcement.value = list[list.length - 1].message;
      })
      .catch(() => {});
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    // The server is unreachable or failing: say so and try again shortly.
    bootError.value = error instanceof ApiError ? error.message : String(error);
    setTimeout(() => {
      if (signedIn.value && !booted.value) void boot();
    }, 5000);
  }
}

export function completeSignIn(newToken: string): void {
  token.set(newToken);
  clearStoredCursor();
  signOutReason.value = null;
  signedIn.value = true;
  void boot();
}

function resetState(): void {
  connection?.stop();
  connection = null;
  for (const hook of resetHooks) hook();
  batch(() => {
    me.value = null;
    conversations.value = new Map();
    moreConversations.value = null;
    chats.value = {};
    users.value = new Map();
    presence.value = new Map();
    typing.value = {};
    receipts.value = {};
    exportsList.value = null;
    announcement.value = null;
    booted.value = false;
  });
  saveOutbox([]);
  clearStoredCursor();
}

export function signedOut(reason: string | null): void {
  token.clear();
  resetState();
  signOutReason.value = reason;
  signedIn.value = false;
}

onUnauthenticated(() => signedOut("Your session has ended. Sign in again."));

export async function signOut(): Promise<void> {
  try {
    await api.post("/auth/logout");
  } catch {
    // Signed out locally whatever the server said.
  }
  signedOut(null);
}

// --- conversations ------------------------------------------------------------------

export async function loadConversations(more = false): Promise<void> {
  const query: Record<string, string | number> = { limit: 50 };
  if (more && moreConversations.value?.cursor) query.cursor = moreConversations.value.cursor;
  if (more && moreConversations.value?.before) query.before = moreConversations.value.before;
  const body = await api.get<Conversation[] | { conversations: Conversation[]; cursor: string; has_more: boolean }>(
    "/conversations",
    query,
  );
  // The contract's paged object, or the bare list of servers from before it.
  const list = Array.isArray(body) ? body : body.conversations;
  const next = more ? new Map(conversations.value) : new Map<string, Conversation>();
  for (const conversation of list) next.set(conversation.id, conversation);
  conversations.value = next;
  if (!Array.isArray(body)) moreConversations.value = body.has_more ? { cursor: body.cursor } : null;
  else moreConversations.value = list.length === 50 ? { before: list[list.length - 1].updated_at } : null;
  for (const conversation of list) {
    const peer = peerOf(conversation);
    if (peer) void ensureUser(peer);
  }
}

const conversationRequests = new Map<string, Promise<Conversation | null>>();
export function fetchConversation(id: string): Promise<Conversation | null> {
  let pending = conversationRequests.get(id);
  if (!pending) {
    pending = api
      .get<Conversation>(`/conversations/${id}`)
      .then((conversation) => {
        setConversation(conversation);
        const peer = peerOf(conversation);
        if (peer) void ensureUser(peer);
        return conversation;
      })
      .catch((error) => {
        if (error instanceof ApiError && error.status === 404) dropConversation(id);
        return null;
      })
      .finally(() => conversationRequests.delete(id));
    conversationRequests.set(id, pending);
  }
  return pending;
}

function dropConversation(id: string): void {
  if (!conversations.value.has(id)) return;
  const next = new Map(conversations.value);
  next.delete(id);
  conversations.value = next;
}

export async function openDirect(userId: string): Promise<string> {
  const conversation = await api.post<Conversation>("/conversations", { type: "direct", user_id: userId });
  setConversation(conversation);
  return conversation.id;
}

export async function createGroup(type: "group" | "broadcast", title: string, memberIds: string[]): Promise<string> {
  const conversation = await api.post<Conversation>("/conversations", { type, title, member_ids: memberIds });
  setConversation(conversation);
  return conversation.id;
}

// --- messages -----------------------------------------------------------------------

function setChat(id: string, chat: ChatState): void {
  chats.value = { ...chats.value, [id]: chat };
}

function mergeMessages(existing: Message[], incoming: Message[]): Message[] {
  const byId = new Map(existing.map((m) => [m.id, m]));
  for (const message of incoming) byId.set(message.id, message);
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

export async function loadHistory(id: string, older = false): Promise<void> {
  const current = chats.value[id];
  if (current?.loading) return;
  if (current && !older) return;
  setChat(id, { messages: current?.messages ?? [], hasMore: current?.hasMore ?? false, loading: true });
  try {
    const query: Record<string, number> = { limit: 50 };
    if (older && current?.messages.length) query.before_seq = current.messages[0].seq;
    const page = await api.get<{ messages: Message[]; has_more: boolean }>(`/conversations/${id}/messages`, query);
    const latest = chats.value[id];
    setChat(id, { messages: mergeMessages(latest?.messages ?? [], page.messages), hasMore: page.has_more, loading: false });
    for (const message of page.messages) if (message.sender_id) void ensureUser(message.sender_id);
  } catch (error) {
    const latest = chats.value[id];
    if (latest) setChat(id, { ...latest, loading: false });
    throw error;
  }
  if (!older) void loadReceipts(id);
}

async function loadReceipts(id: string): Promise<void> {
  try {
    const body = await api.get<{ receipts: Array<{ user_id: string } & Receipts> }>(`/conversations/${id}/receipts`);
    const pointers: Record<string, Receipts> = { ...(receipts.value[id] ?? {}) };
    for (const row of body.receipts) {
      const known = pointers[row.user_id];
      pointers[row.user_id] = {
        delivered_seq: Math.max(known?.delivered_seq ?? 0, row.delivered_seq ?? 0) || row.delivered_seq,
        read_seq: row.read_seq === null ? known?.read_seq ?? null : Math.max(known?.read_seq ?? 0, row.read_seq),
      };
    }
    receipts.value = { ...receipts.value, [id]: pointers };
  } catch {
    // Ticks stay at "sent" until the next receipt event.
  }
}

function upsertMessage(message: Message, isNew: boolean): void {
  const id = message.conversation_id;
  const conversation = conversations.value.get(id);
  if (!conversation) {
    void fetchConversation(id);
  } else {
    const updated: Conversation = { ...conversation };
    if (message.seq > conversation.last_seq) {
      updated.last_seq = message.seq;
      updated.last_message = message;
      updated.updated_at = message.created_at;
      const mine = message.sender_id === me.value?.id;
      if (isNew && !mine && message.seq > conversation.read_seq) updated.unread_count = conversation.unread_count + 1;
    } else if (conversation.last_message?.id === message.id) {
      updated.last_message = message;
    }
    setConversation(updated);
  }
  const chat = chats.value[id];
  if (chat) setChat(id, { ...chat, messages: mergeMessages(chat.messages, [message]) });
  if (message.sender_id === me.value?.id) {
    const remaining = outbox.value.filter((item) => item.client_id !== message.client_id);
    if (remaining.length !== outbox.value.length) saveOutbox(remaining);
  } else {
    void ensureUser(message.sender_id);
    if (activeChat.value === id && pageVisible()) markRead(id);
  }
}

const readTimers = new Map<string, number>();
/** Move the read pointer to the newest message of an open, visible chat (debounced). */
export function markRead(id: string): void {
  const conversation = conversations.value.get(id);
  if (!conversation || conversation.last_seq <= conversation.read_seq) return;
  const seq = conversation.last_seq;
  setConversation({ ...conversation, read_seq: seq, unread_count: 0 });
  clearTimeout(readTimers.get(id));
  readTimers.set(
    id,
    window.setTimeout(() => {
      readTimers.delete(id);
      api.post(`/conversations/${id}/read`, { seq }).catch(() => {});
    }, 300),
  );
}

// --- the stream -----------------------------------------------------------------------

function applyFrame(frame: any): void {
  for (const hook of frameHooks) if (hook(frame)) return;
  switch (frame.type) {
    case "event":
      applyEvent(frame.event as StreamEvent);
      connection?.applied(frame.event.cursor);
      return;
    case "message.sent":
      upsertMessage(frame.message, false);
      return;
    case "error":
      if (frame.ref) outboxError(frame.ref, frame.code, frame.message);
      return;
    case "typing":
      applyTyping(frame);
      return;
    case "presence": {
      const next = new Map(presence.value);
      next.set(frame.user_id, { state: frame.state, last_seen: frame.last_seen ?? null });
      presence.value = next;
      return;
    }
    default:
      // Frames of features this client does not know are ignored.
      return;
  }
}

function applyEvent(event: StreamEvent): void {
  const data = event.data ?? {};
  switch (event.type) {
    case "message.new":
      upsertMessage(data as Message, true);
      break;
    case "message.edited":
      upsertMessage(data as Message, false);
      break;
    case "message.deleted":
      applyDeleted(data);
      break;
    case "receipt.delivered":
    case "receipt.read": {
      const field = event.type === "receipt.read" ? "read_seq" : "delivered_seq";
      const pointers = { ...(receipts.value[data.conversation_id] ?? {}) };
      const known = pointers[data.user_id] ?? { delivered_seq: null, read_seq: null };
      const updated = { ...known, [field]: Math.max(known[field] ?? 0, data.seq) };
      if (field === "read_seq") updated.delivered_seq = Math.max(updated.delivered_seq ?? 0, data.seq);
      pointers[data.user_id] = updated;
      receipts.value = { ...receipts.value, [data.conversation_id]: pointers };
      break;
    }
    case "conversation.created":
      setConversation(data as Conversation);
      break;
    case "conversation.updated": {
      const conversation = conversations.value.get(data.conversation_id);
      if (!conversation) {
        void fetchConversation(data.conversation_id);
        break;
      }
      const { conversation_id: _id, ...changes } = data;
      if (changes.read_seq !== undefined && changes.read_seq < conversation.read_seq) {
        // An older read sync replayed over a newer snapshot.
        delete changes.read_seq;
        delete changes.unread_count;
      }
      const simple = ["title", "read_seq", "unread_count", "muted_until"];
      setConversation({ ...conversation, ...changes });
      if (Object.keys(changes).some((key) => !simple.includes(key))) void fetchConversation(data.conversation_id);
      break;
    }
    case "member.added":
    case "member.removed":
      if (event.type === "member.removed" && data.user_id === me.value?.id) {
        dropConversation(data.conversation_id);
        showToast("You left or were removed from a conversation.");
      } else {
        void fetchConversation(data.conversation_id);
      }
      break;
    case "contact.joined":
      contactsVersion.value++;
      if (data.user?.display_name) showToast(`${data.user.display_name} joined`);
      break;
    case "export.ready":
      void refreshExports();
      break;
    case "system.announcement":
      announcement.value = data.message ?? data.text ?? "Announcement from the operator";
      break;
    default:
      break;
  }
  for (const hook of eventHooks) hook(event);
}

function applyDeleted(data: { conversation_id: string; message_id: string; seq: number; for?: string }): void {
  const chat = chats.value[data.conversation_id];
  const conversation = conversations.value.get(data.conversation_id);
  if (data.for === "me") {
    if (chat) setChat(data.conversation_id, { ...chat, messages: chat.messages.filter((m) => m.id !== data.message_id) });
    if (conversation?.last_message?.id === data.message_id) void fetchConversation(data.conversation_id);
    return;
  }
  const recall = (m: Message): Message =>
    m.id === data.message_id ? { ...m, deleted: true, text: "", attachment: null, location: null } : m;
  if (chat) setChat(data.conversation_id, { ...chat, messages: chat.messages.map(recall) });
  if (conversation?.last_message) setConversation({ ...conversation, last_message: recall(conversation.last_message) });
}

const typingTimers = new Map<string, number>();
function applyTyping(frame: { conversation_id: string; user_id: string; state: string }): void {
  const key = `${frame.conversation_id}:${frame.user_id}`;
  clearTimeout(typingTimers.get(key));
  const current = { ...(typing.value[frame.conversation_id] ?? {}) };
  if (frame.state === "start") {
    current[frame.user_id] = Date.now();
    typingTimers.set(key, window.setTimeout(() => applyTyping({ ...frame, state: "stop" }), 6000));
  } else {
    delete current[frame.user_id];
  }
  typing.value = { ...typing.value, [frame.conversation_id]: current };
  void ensureUser(frame.user_id);
}

// --- sending ------------------------------------------------------------------------

/** Queue a message: sent now when the socket is up, else as soon as it is, once (client_id). */
export function sendMessage(conversationId: string, body: Record<string, unknown>, preview?: OutboxItem["preview"]): void {
  const clientId = uuid4();
  const item: OutboxItem = {
    client_id: clientId,
    conversation_id: conversationId,
    body: { ...body, client_id: clientId },
    state: "queued",
    created_at: new Date().toISOString(),
    preview,
  };
  saveOutbox([...outbox.value, item]);
  flushOutbox();
}

/** Send queued messages; after a (re)connect also those sent before it that were never acknowledged. */
function flushOutbox(resend = false): void {
  if (!connection) return;
  let changed = false;
  const items = outbox.value.map((item) => {
    if (item.state === "failed" || (item.state === "sending" && !resend)) return item;
    // After a reconnect everything unacknowledged goes again with the same client_id: the server
    // answers a repeat with the original message, so nothing is ever doubled.
    if (connection!.send({ type: "message.send", ref: item.client_id, conversation_id: item.conversation_id, message: item.body })) {
      changed = true;
      return { ...item, state: "sending" as const };
    }
    return item;
  });
  if (changed) saveOutbox(items);
}

const RETRYABLE = new Set(["rate_limited", "service_unavailable", "internal_error"]);
function outboxError(ref: string, code: string, message: string): void {
  const item = outbox.value.find((candidate) => candidate.client_id === ref);
  if (!item) return;
  if (RETRYABLE.has(code)) {
    saveOutbox(outbox.value.map((candidate) => (candidate === item ? { ...candidate, state: "queued" } : candidate)));
    setTimeout(() => flushOutbox(), 3000);
    return;
  }
  saveOutbox(outbox.value.map((candidate) => (candidate === item ? { ...candidate, state: "failed", error: message || code } : candidate)));
}

export function retryOutbox(clientId: string): void {
  saveOutbox(outbox.value.map((item) => (item.client_id === clientId ? { ...item, state: "queued", error: undefined } : item)));
  flushOutbox();
}

export function discardOutbox(clientId: string): void {
  saveOutbox(outbox.value.filter((item) => item.client_id !== clientId));
}

let lastTypingSent = new Map<string, number>();
export function sendTyping(conversationId: string, state: "start" | "stop"): void {
  const now = Date.now();
  if (state === "start") {
    if (now - (lastTypingSent.get(conversationId) ?? 0) < 3000) return;
    lastTypingSent.set(conversationId, now);
  } else {
    if (!lastTypingSent.has(conversationId)) return;
    lastTypingSent.delete(conversationId);
  }
  connection?.send({ type: "typing", conversation_id: conversationId, state });
}

// --- exports --------------------------------------------------------------------------

export async function refreshExports(): Promise<void> {
  try {
    exportsList.value = await api.get<ExportInfo[]>("/me/exports");
  } catch {
    // shown as unavailable
  }
}
