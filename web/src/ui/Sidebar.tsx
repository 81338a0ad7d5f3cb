import { clock, shortDate } from "../lib/format";
import { match, navigate, path } from "../lib/router";
import { newMoments } from "../lib/moments";
import { socketState } from "../lib/socket";
import {
  conversationTitle,
  loadConversations,
  me,
  moreConversations,
  peerOf,
  presence,
  sortedConversations,
  typing,
  userName,
} from "../lib/store";
import type { Conversation, Message } from "../lib/types";
import { Avatar } from "./common";
import { Icon } from "./icons";

export function preview(message: Message | null, conversation: Conversation): string {
  if (!message) return conversation.type === "direct" ? "Say hello" : "No messages yet";
  if (message.deleted) return "Message recalled";
  const who = conversation.type !== "direct" || message.sender_id === me.value?.id ? `${userName(message.sender_id)}: ` : "";
  const body =
    message.type === "text" ? message.text
    : message.type === "image" ? `Photo${message.text ? `: ${message.text}` : ""}`
    : message.type === "voice" ? "Voice message"
    : message.type === "video" ? "Video"
    : message.type === "file" ? `File: ${message.attachment?.name ?? ""}`
    : message.type === "location" ? "Location"
    : message.type === "call" ? `${message.call?.outcome === "missed" ? "Missed " : ""}${message.call?.media === "video" ? "Video call" : "Voice call"}`
    : message.type === "red_packet" ? `[Red packet] ${message.red_packet?.greeting || "Best wishes!"}`
    : message.type === "sticker" ? "Sticker"
    : message.text;
  return who + body;
}

export function Sidebar() {
  const current = match("/chat/:id", path.value)?.id ?? match("/chat/:id/info", path.value)?.id;
  const list = sortedConversations();
  return (
    <aside class="sidebar">
      <header class="sidebar-header">
        <button class="me" onClick={() => navigate("/settings")} data-testid="open-settings" title="Profile and settings">
          <Avatar userId={me.value?.id} name={me.value?.display_name ?? ""} />
          <span class="me-name">{me.value?.display_name || "Set your name"}</span>
          <span class={`dot ${socketState.value}`} title={socketState.value} data-testid="socket-state" data-state={socketState.value} />
        </button>
        <nav class="sidebar-nav">
          <button class="icon nav-moments" title="Moments" aria-label="Moments" data-testid="nav-moments" onClick={() => navigate("/moments")}>
            <Icon name="moments" />
            {newMoments.value > 0 && <span class="nav-badge" data-testid="moments-badge">{newMoments.value}</span>}
          </button>
          <button class="icon" title="Contacts" aria-label="Contacts" data-testid="nav-contacts" onClick={() => navigate("/contacts")}><Icon name="contacts" /></button>
          <button class="icon" title="New group" aria-label="New group" data-testid="nav-new-group" onClick={() => navigate("/new/group")}><Icon name="group" /></button>
          <button class="icon" title="New broadcast" aria-label="New broadcast" data-testid="nav-new-broadcast" onClick={() => navigate("/new/broadcast")}><Icon name="broadcast" /></button>
          <button class="icon" title="Settings" aria-label="Settings" data-testid="nav-settings" onClick={() => navigate("/settings")}><Icon name="settings" /></button>
        </nav>
      </header>
      <ul class="chat-list" data-testid="chat-list">
        {list.length === 0 && (
          <li class="empty muted">
            No chats yet. <button class="link" onClick={() => navigate("/contacts")}>Find your contacts</button>
          </li>
        )}
        {list.map((conversation) => {
          const title = conversationTitle(conversation);
          const peer = peerOf(conversation);
          const online = peer && presence.value.get(peer)?.state === "online";
          const typers = Object.keys(typing.value[conversation.id] ?? {});
          const when = conversation.last_message?.created_at ?? conversation.updated_at;
          return (
            <li key={conversation.id}>
              <button
                class={`chat-item${current === conversation.id ? " active" : ""}`}
                data-testid="chat-item"
                data-title={title}
                onClick={() => navigate(`/chat/${conversation.id}`)}
              >
                <div class="avatar-wrap">
                  <Avatar userId={peer} name={title} group={conversation.type !== "direct"} />
                  {online && <span class="online-dot" />}
                </div>
                <div class="chat-item-body">
                  <div class="row">
                    <span class="chat-title">
                      {conversation.type === "broadcast" && <Icon name="broadcast" size={15} />}
                      {title}
                    </span>
                    <span class="chat-time" title={clock(when)}>{shortDate(when)}</span>
                  </div>
                  <div class="row">
                    <span class={`chat-preview${typers.length ? " typing" : ""}`}>
                      {typers.length ? "typing…" : preview(conversation.last_message, conversation)}
                    </span>
                    {conversation.unread_count > 0 && (
                      <span class={`badge${conversation.muted_until ? " muted" : ""}`} data-testid="unread">
                        {conversation.unread_count}
                      </span>
                    )}
                  </div>
                </div>
              </button>
            </li>
          );
        })}
        {moreConversations.value && (
          <li>
            <button class="link more" onClick={() => loadConversations(true)}>Load more chats</button>
          </li>
        )}
      </ul>
    </aside>
  );
}
