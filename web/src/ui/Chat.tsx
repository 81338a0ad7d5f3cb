import { signal } from "@preact/signals";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, uploadAttachment } from "../lib/api";
import { bytes, clock, duration, lastSeen } from "../lib/format";
import { blobUrl, saveBlob } from "../lib/media";
import { navigate } from "../lib/router";
import {
  activeChat,
  chats,
  conversations,
  conversationTitle,
  discardOutbox,
  ensureUser,
  fetchConversation,
  loadHistory,
  markRead,
  me,
  myRole,
  outbox,
  peerOf,
  presence,
  receipts,
  refreshUser,
  retryOutbox,
  sendMessage,
  sendTyping,
  showToast,
  typing,
  userName,
  users,
} from "../lib/store";
import type { Attachment, Conversation, Message } from "../lib/types";
import { currentCall, startCall } from "../lib/calls";
import { extensionFor, startRecording, toWav } from "../lib/voice";
import { errorText, Header, Spinner } from "./common";
import { Icon } from "./icons";
import { RedPacketCard, RedPacketComposer, RedPacketDialog } from "./RedPacket";

interface Upload {
  id: string;
  conversation_id: string;
  file: Blob;
  name: string;
  kind: "image" | "voice";
  previewUrl: string;
  state: "uploading" | "failed";
  error?: string;
  reply_to?: string | null;
}
const uploads = signal<Upload[]>([]);

const EDIT_WINDOW_MS = 48 * 3600 * 1000;
const RECALL_WINDOW_MS = 24 * 3600 * 1000;

function setUpload(id: string, patch: Partial<Upload> | null) {
  uploads.value = patch === null ? uploads.value.filter((u) => u.id !== id) : uploads.value.map((u) => (u.id === id ? { ...u, ...patch } : u));
}

async function runUpload(upload: Upload): Promise<void> {
  setUpload(upload.id, { state: "uploading", error: undefined });
  try {
    let attachment: Attachment;
    try {
      attachment = await uploadAttachment(upload.file, upload.name, upload.kind);
    } catch (error) {
      // A server that does not read this recording's container gets it as WAV.
      if (upload.kind === "voice" && error instanceof ApiError && (error.status === 415 || error.status === 400)) {
        const wav = await toWav(upload.file);
        attachment = await uploadAttachment(wav, upload.name.replace(/\.\w+$/, ".wav"), "voice");
      } else {
        throw error;
      }
    }
    setUpload(upload.id, null);
    sendMessage(
      upload.conversation_id,
      { type: upload.kind, attachment_id: attachment.id, ...(upload.reply_to ? { reply_to: upload.reply_to } : {}) },
      { kind: upload.kind, url: upload.previewUrl },
    );
  } catch (error) {
    setUpload(upload.id, { state: "failed", error: errorText(error) });
  }
}

function startUpload(conversationId: string, file: Blob, name: string, kind: "image" | "voice", replyTo: string | null) {
  const upload: Upload = {
    id: crypto.randomUUID(),
    conversation_id: conversationId,
    file,
    name,
    kind,
    previewUrl: URL.createObjectURL(file),
    state: "uploading",
    reply_to: replyTo,
  };
  uploads.value = [...uploads.value, upload];
  void runUpload(upload);
}

type Status = "pending" | "failed" | "sent" | "delivered" | "read";

function statusOf(message: Message, conversation: Conversation): Status {
  const others = conversation.members.map((m) => m.user_id).filter((id) => id !== me.value?.id);
  if (conversation.type === "broadcast" || others.length === 0) return "sent";
  const pointers = receipts.value[conversation.id] ?? {};
  if (others.every((id) => (pointers[id]?.read_seq ?? 0) >= message.seq)) return "read";
  if (others.every((id) => (pointers[id]?.delivered_seq ?? 0) >= message.seq)) return "delivered";
  return "sent";
}

function Ticks(props: { status: Status }) {
  const label = { pending: "🕓", failed: "!", sent: "✓", delivered: "✓✓", read: "✓✓" }[props.status];
  return (
    <span class={`ticks ${props.status}`} data-testid="ticks" title={props.status}>
      {label}
    </span>
  );
}

function AuthImage(props: { attachment: Attachment; onOpen: () => void }) {
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  const source = props.attachment.thumbnail_url ?? props.attachment.url;
  useEffect(() => {
    let live = true;
    blobUrl(source).then((url) => live && setSrc(url)).catch(() => live && setFailed(true));
    return () => {
      live = false;
    };
  }, [source]);
  const ratio = props.attachment.width && props.attachment.height ? props.attachment.height / props.attachment.width : 0.75;
  if (failed) return <div class="media-missing">Image unavailable</div>;
  return (
    <button class="image-button" onClick={props.onOpen} aria-label="Open image">
      {src ? (
        <img class="message-image" data-testid="message-image" src={src} alt={props.attachment.name ?? "Photo"} />
      ) : (
        <div class={`image-placeholder ${ratio > 1 ? "tall" : "wide"}`} />
      )}
    </button>
  );
}

function VoiceNote(props: { attachment: Attachment }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    blobUrl(props.attachment.url).then((url) => live && setSrc(url)).catch(() => {});
    return () => {
      live = false;
    };
  }, [props.attachment.url]);
  return (
    <div class="voice" data-testid="voice">
      <span class="voice-icon"><Icon name="mic" size={18} /></span>
      {src ? <audio controls preload="metadata" src={src} data-testid="voice-audio" /> : <Spinner />}
      <span class="voice-length">{duration(props.attachment.duration_ms)}</span>
    </div>
  );
}

function FileLink(props: { attachment: Attachment }) {
  async function download() {
    try {
      const url = await blobUrl(props.attachment.url);
      const blob = await (await fetch(url)).blob();
      saveBlob(blob, props.attachment.name ?? "file");
    } catch (error) {
      showToast(errorText(error));
    }
  }
  return (
    <button class="file-link" onClick={download}>
      <Icon name="file" size={16} /> {props.attachment.name ?? "File"} <span class="muted">{bytes(props.attachment.size)}</span>
    </button>
  );
}

const CALL_OUTCOMES: Record<string, string> = {
  completed: "",
  missed: "Missed",
  rejected: "Declined",
  busy: "Busy",
  failed: "Failed",
};

function CallLine(props: { message: Message }) {
  const call = props.message.call;
  const kind = call?.media === "video" ? "Video call" : "Voice call";
  const outcome = call ? CALL_OUTCOMES[call.outcome] ?? call.outcome : "";
  return (
    <div class="text call-line" data-testid="call-message" data-outcome={call?.outcome}>
      <Icon name={call?.media === "video" ? "video" : "phone"} size={16} /> {outcome ? `${outcome} ${kind.toLowerCase()}` : kind}
      {call?.outcome === "completed" && <span class="muted"> · {duration(call.duration_ms)}</span>}
    </div>
  );
}

function Content(props: { message: Message; conversation: Conversation; onOpenImage: (a: Attachment) => void; onOpenPacket: (id: string) => void }) {
  const m = props.message;
  if (m.deleted) return <span class="recalled" data-testid="recalled">This message was recalled</span>;
  const caption = m.text ? <div class="text">{m.text}</div> : null;
  switch (m.type) {
    case "image":
      return (
        <>
          {m.attachment && <AuthImage attachment={m.attachment} onOpen={() => props.onOpenImage(m.attachment!)} />}
          {caption}
        </>
      );
    case "voice":
      return m.attachment ? <VoiceNote attachment={m.attachment} /> : <span class="muted">Voice message</span>;
    case "video":
    case "file":
      return (
        <>
          {m.attachment && <FileLink attachment={m.attachment} />}
          {caption}
        </>
      );
    case "location":
      return m.location ? (
        <div class="text"><Icon name="pin" size={16} /> {m.location.lat.toFixed(5)}, {m.location.lng.toFixed(5)}</div>
      ) : null;
    case "call":
      return <CallLine message={m} />;
    case "red_packet":
      return <RedPacketCard message={m} conversation={props.conversation} onOpen={() => m.red_packet && props.onOpenPacket(m.red_packet.id)} />;
    default:
      return <div class="text" data-testid="message-text">{m.text}</div>;
  }
}

function quoteOf(message: Message | undefined): string {
  if (!message) return "Message";
  if (message.deleted) return "Recalled message";
  if (message.type === "text") return message.text;
  return { image: "Photo", voice: "Voice message", video: "Video", file: "File", location: "Location", call: "Call", red_packet: "Red packet" }[message.type] ?? message.type;
}

export function Chat(props: { id: string }) {
  const id = props.id;
  const conversation = conversations.value.get(id);
  const chat = chats.value[id];
  const [text, setText] = useState("");
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [viewer, setViewer] = useState<string | null>(null);
  const [packetOpen, setPacketOpen] = useState<string | null>(null);
  const [composingPacket, setComposingPacket] = useState(false);
  const [recording, setRecording] = useState<{ stop(): Promise<Blob>; cancel(): void } | null>(null);
  const [recordStart, setRecordStart] = useState(0);
  const [, tick] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const listRef = useRef<HTMLDivElement>(null);
  const fileRef = useRef<HTMLInputElement>(null);
  const stickToBottom = useRef(true);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    activeChat.value = id;
    if (!conversation) void fetchConversation(id);
    else if (peerOf(conversation) && peerOf(conversation) !== me.value?.id) refreshUser(peerOf(conversation)!);
    loadHistory(id).catch((e) => setError(errorText(e)));
    const onVisible = () => document.visibilityState === "visible" && markRead(id);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
      if (activeChat.value === id) activeChat.value = null;
      sendTyping(id, "stop");
    };
  }, [id]);

  useEffect(() => {
    if (conversation && document.visibilityState === "visible") markRead(id);
    if (conversation) for (const member of conversation.members) void ensureUser(member.user_id);
  }, [conversation?.last_seq, conversation?.members.length]);

  useEffect(() => {
    if (!recording) return;
    const timer = setInterval(() => tick((n) => n + 1), 500);
    return () => clearInterval(timer);
  }, [recording]);

  const pending = outbox.value.filter((item) => item.conversation_id === id);
  const pendingUploads = uploads.value.filter((u) => u.conversation_id === id);
  const messages = chat?.messages ?? [];

  useLayoutEffect(() => {
    const list = listRef.current;
    if (list && stickToBottom.current) list.scrollTop = list.scrollHeight;
  }, [messages.length, pending.length, pendingUploads.length, messages[messages.length - 1]?.id]);

  if (!conversation) {
    return (
      <div class="pane">
        <Header title="Chat" back="/" />
        <div class="center">{error ? <p class="error">{error}</p> : <Spinner />}</div>
      </div>
    );
  }

  const title = conversationTitle(conversation);
  const peer = peerOf(conversation);
  const role = myRole(conversation);
  const canPost = conversation.type !== "broadcast" || role === "owner" || role === "admin";
  const typers = Object.keys(typing.value[id] ?? {}).filter((u) => u !== me.value?.id);
  let subtitle: string;
  if (typers.length) {
    subtitle = conversation.type === "direct" ? "typing…" : `${typers.map(userName).join(", ")} typing…`;
  } else if (conversation.type === "direct" && peer && peer !== me.value?.id) {
    const state = presence.value.get(peer);
    subtitle = state?.state === "online" ? "online" : lastSeen(state?.last_seen ?? users.value.get(peer)?.last_seen);
  } else {
    const count = conversation.member_count ?? conversation.members.length;
    subtitle = conversation.type === "broadcast" ? `Broadcast · ${count} members` : `${count} members`;
  }
  const byId = new Map(messages.map((m) => [m.id, m]));
  const clientIds = new Set(messages.map((m) => m.client_id));
  const selectedMessage = selected ? byId.get(selected) : undefined;
  const mineSelected = selectedMessage && selectedMessage.sender_id === me.value?.id;
  const age = selectedMessage ? Date.now() - Date.parse(selectedMessage.created_at) : 0;
  const isAdmin = role === "owner" || role === "admin";

  function onScroll() {
    const list = listRef.current;
    if (!list) return;
    stickToBottom.current = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  async function submit(event?: Event) {
    event?.preventDefault();
    const body = text.trim();
    if (!body) return;
    if (editing) {
      try {
        await api.patch(`/messages/${editing.id}`, { text: body });
        setEditing(null);
        setText("");
      } catch (e) {
        showToast(errorText(e));
      }
      return;
    }
    sendMessage(id, { type: "text", text: body, ...(replyTo ? { reply_to: replyTo.id } : {}) });
    sendTyping(id, "stop");
    setText("");
    setReplyTo(null);
    stickToBottom.current = true;
    inputRef.current?.focus();
  }

  function onKey(event: KeyboardEvent) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void submit();
    } else if (event.key === "Escape") {
      setEditing(null);
      setReplyTo(null);
    }
  }

  function onPickImage(event: Event) {
    const input = event.target as HTMLInputElement;
    for (const file of Array.from(input.files ?? [])) startUpload(id, file, file.name, "image", replyTo?.id ?? null);
    input.value = "";
    setReplyTo(null);
    stickToBottom.current = true;
  }

  async function toggleRecording() {
    if (recording) {
      const blob = await recording.stop();
      setRecording(null);
      if (Date.now() - recordStart < 500) return;
      startUpload(id, blob, `voice-${new Date().toISOString().replace(/[:.]/g, "-")}.${extensionFor(blob.type)}`, "voice", replyTo?.id ?? null);
      setReplyTo(null);
      stickToBottom.current = true;
      return;
    }
    try {
      setRecording(await startRecording());
      setRecordStart(Date.now());
    } catch (e) {
      showToast(`Cannot record: ${errorText(e)}`);
    }
  }

  async function recall(scope: "everyone" | "me") {
    if (!selectedMessage) return;
    try {
      await api.del(`/messages/${selectedMessage.id}`, { for: scope });
    } catch (e) {
      showToast(errorText(e));
    }
    setSelected(null);
  }

  return (
    <div class="pane chat" data-testid="chat" data-conversation={id}>
      <Header title={title} subtitle={subtitle} back="/">
        {conversation.type === "direct" && peer && peer !== me.value?.id && (
          <>
            <button class="icon" title="Voice call" aria-label="Voice call" data-testid="call-voice" disabled={!!currentCall.value && currentCall.value.state !== "ended"}
              onClick={() => void startCall(id, peer, "audio")}>
              <Icon name="phone" />
            </button>
            <button class="icon" title="Video call" aria-label="Video call" data-testid="call-video" disabled={!!currentCall.value && currentCall.value.state !== "ended"}
              onClick={() => void startCall(id, peer, "video")}>
              <Icon name="video" />
            </button>
          </>
        )}
        <button class="icon" title="Details" aria-label="Details" data-testid="chat-info" onClick={() => navigate(`/chat/${id}/info`)}>
          <Icon name="info" />
        </button>
      </Header>
      {selectedMessage && (
        <div class="action-bar" data-testid="message-actions">
          {!selectedMessage.deleted && canPost && (
            <button onClick={() => { setReplyTo(selectedMessage); setEditing(null); setSelected(null); inputRef.current?.focus(); }} data-testid="action-reply">
              Reply
            </button>
          )}
          {mineSelected && !selectedMessage.deleted && selectedMessage.type === "text" && age < EDIT_WINDOW_MS && (
            <button onClick={() => { setEditing(selectedMessage); setText(selectedMessage.text); setReplyTo(null); setSelected(null); inputRef.current?.focus(); }} data-testid="action-edit">
              Edit
            </button>
          )}
          {!selectedMessage.deleted && ((mineSelected && age < RECALL_WINDOW_MS) || (isAdmin && conversation.type !== "direct")) && (
            <button onClick={() => recall("everyone")} data-testid="action-recall">Recall</button>
          )}
          <button onClick={() => recall("me")} data-testid="action-delete-me">Delete for me</button>
          <button class="link" onClick={() => setSelected(null)}>Cancel</button>
        </div>
      )}
      <div class="messages" ref={listRef} onScroll={onScroll} data-testid="messages">
        {chat?.hasMore && (
          <button class="link load-older" onClick={() => { stickToBottom.current = false; void loadHistory(id, true); }}>
            Load earlier messages
          </button>
        )}
        {!chat && <Spinner />}
        {error && <p class="error">{error}</p>}
        {messages.map((m, index) => {
          const mine = m.sender_id === me.value?.id;
          const previous = messages[index - 1];
          const showName = !mine && conversation.type !== "direct" && previous?.sender_id !== m.sender_id;
          const quoted = m.reply_to ? byId.get(m.reply_to) : undefined;
          const status = mine ? statusOf(m, conversation) : null;
          return (
            <div
              key={m.id}
              class={`message${mine ? " mine" : ""}${selected === m.id ? " selected" : ""}${m.deleted ? " deleted" : ""}`}
              data-testid="message"
              data-seq={m.seq}
              data-id={m.id}
              data-type={m.type}
              data-status={status ?? undefined}
              onClick={() => setSelected(selected === m.id ? null : m.id)}
            >
              <div class="bubble">
                {showName && <div class="sender">{userName(m.sender_id)}</div>}
                {m.reply_to && !m.deleted && (
                  <div class="quote" data-testid="quote">
                    <span class="sender">{quoted ? userName(quoted.sender_id) : ""}</span>
                    <span>{quoteOf(quoted)}</span>
                  </div>
                )}
                <Content message={m} conversation={conversation} onOpenImage={(a) => setViewer(a.url)} onOpenPacket={setPacketOpen} />
                <div class="meta">
                  {m.edited_at && !m.deleted && <span class="edited" data-testid="edited">edited</span>}
                  <span>{clock(m.created_at)}</span>
                  {status && <Ticks status={status} />}
                </div>
              </div>
            </div>
          );
        })}
        {pending
          .filter((item) => !clientIds.has(item.client_id))
          .map((item) => (
            <div key={item.client_id} class="message mine pending" data-testid="message" data-status={item.state === "failed" ? "failed" : "pending"}>
              <div class="bubble">
                {item.body.type === "text" && <div class="text" data-testid="message-text">{String(item.body.text)}</div>}
                {item.preview?.kind === "image" && <img class="message-image" src={item.preview.url} alt="" />}
                {item.preview?.kind === "voice" && <div class="voice"><Icon name="mic" size={18} /> Voice message</div>}
                <div class="meta">
                  {item.state === "failed" ? (
                    <>
                      <span class="error">{item.error}</span>
                      <button class="link" onClick={() => retryOutbox(item.client_id)}>Retry</button>
                      <button class="link" onClick={() => discardOutbox(item.client_id)}>Discard</button>
                    </>
                  ) : (
                    <Ticks status="pending" />
                  )}
                </div>
              </div>
            </div>
          ))}
        {pendingUploads.map((upload) => (
          <div key={upload.id} class="message mine pending" data-testid="upload" data-state={upload.state}>
            <div class="bubble">
              {upload.kind === "image" ? <img class="message-image" src={upload.previewUrl} alt="" /> : <div class="voice"><Icon name="mic" size={18} /> Voice message</div>}
              <div class="meta">
                {upload.state === "uploading" ? (
                  <span>Uploading…</span>
                ) : (
                  <>
                    <span class="error">Upload failed: {upload.error}</span>
                    <button class="link" data-testid="retry-upload" onClick={() => runUpload(upload)}>Retry</button>
                    <button class="link" onClick={() => setUpload(upload.id, null)}>Discard</button>
                  </>
                )}
              </div>
            </div>
          </div>
        ))}
      </div>
      {canPost ? (
        <form class="composer" onSubmit={submit} data-testid="composer">
          {(replyTo || editing) && (
            <div class="composer-context" data-testid="composer-context">
              <span>
                {editing ? "Editing" : `Replying to ${userName(replyTo!.sender_id)}`}: <em>{quoteOf((editing ?? replyTo)!)}</em>
              </span>
              <button type="button" class="link" onClick={() => { setReplyTo(null); if (editing) { setEditing(null); setText(""); } }}>
                ✕
              </button>
            </div>
          )}
          <div class="composer-row">
            <input ref={fileRef} type="file" accept="image/*" multiple hidden onChange={onPickImage} data-testid="image-input" />
            <button type="button" class="icon" title="Send a photo" aria-label="Send a photo" onClick={() => fileRef.current?.click()} disabled={!!recording}>
              <Icon name="camera" />
            </button>
            {!(conversation.type === "direct" && peer === me.value?.id) && (
              <button type="button" class="icon packet-button" title="Send a red packet" aria-label="Send a red packet" data-testid="red-packet-button"
                onClick={() => setComposingPacket(true)} disabled={!!recording}>
                <Icon name="packet" />
              </button>
            )}
            {recording ? (
              <div class="recording" data-testid="recording">● Recording {duration(Date.now() - recordStart)}</div>
            ) : (
              <textarea
                ref={inputRef}
                rows={1}
                placeholder="Type a message"
                value={text}
                data-testid="message-input"
                onInput={(e) => {
                  setText((e.target as HTMLTextAreaElement).value);
                  if ((e.target as HTMLTextAreaElement).value) sendTyping(id, "start");
                }}
                onBlur={() => sendTyping(id, "stop")}
                onKeyDown={onKey}
              />
            )}
            {text.trim() && !recording ? (
              <button type="submit" class="icon send" aria-label="Send" data-testid="send"><Icon name="send" /></button>
            ) : (
              <button
                type="button"
                class={`icon${recording ? " recording-on" : ""}`}
                aria-label={recording ? "Stop and send" : "Record a voice message"}
                title={recording ? "Stop and send" : "Record a voice message"}
                data-testid="record"
                onClick={toggleRecording}
              >
                {recording ? <Icon name="stop" /> : <Icon name="mic" />}
              </button>
            )}
            {recording && (
              <button type="button" class="link" onClick={() => { recording.cancel(); setRecording(null); }}>
                Cancel
              </button>
            )}
          </div>
        </form>
      ) : (
        <div class="composer readonly">Only admins can post in this broadcast.</div>
      )}
      {viewer && <ImageViewer url={viewer} onClose={() => setViewer(null)} />}
      {packetOpen && <RedPacketDialog packetId={packetOpen} conversation={conversation} onClose={() => setPacketOpen(null)} />}
      {composingPacket && <RedPacketComposer conversation={conversation} onClose={() => setComposingPacket(false)} />}
    </div>
  );
}

function ImageViewer(props: { url: string; onClose: () => void }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    blobUrl(props.url).then(setSrc).catch(() => props.onClose());
  }, [props.url]);
  return (
    <div class="viewer" onClick={props.onClose} data-testid="image-viewer">
      {src ? <img src={src} alt="" /> : <Spinner />}
    </div>
  );
}
