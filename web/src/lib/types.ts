// Shapes of the client contract (shared/contract/API.md) that the web client reads.

export type Visibility = "everyone" | "contacts" | "nobody";

export interface Settings {
  discoverable?: Visibility;
  last_seen?: Visibility;
  read_receipts?: boolean;
  message_preview_in_push?: boolean;
  moments_window?: "all" | "6m" | "1m" | "3d";
  group_add?: Visibility;
  [key: string]: unknown;
}

export interface Me {
  id: string;
  phone: string;
  display_name: string;
  about: string;
  avatar_url: string | null;
  created_at: string;
  settings: Settings;
}

export interface PublicUser {
  id: string;
  display_name: string;
  about: string;
  avatar_url: string | null;
  last_seen?: string | null;
}

export interface Device {
  id: string;
  name: string;
  platform: string;
  created_at: string;
  last_active_at: string | null;
  current: boolean;
}

export interface Attachment {
  id: string;
  kind: "image" | "voice" | "video" | "file";
  content_type: string;
  size: number;
  url: string;
  thumbnail_url: string | null;
  width: number | null;
  height: number | null;
  duration_ms: number | null;
  name?: string;
}

export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  client_id: string;
  type: string;
  text: string;
  attachment: Attachment | null;
  reply_to: string | null;
  location?: { lat: number; lng: number } | null;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
  call?: { call_id: string; media: string; outcome: string; duration_ms: number; caller_id: string };
  red_packet?: { id: string; total: number; count: number; mode: string; greeting?: string };
}

export interface Member {
  user_id: string;
  role: "owner" | "admin" | "member";
}

export interface Conversation {
  id: string;
  type: "direct" | "group" | "broadcast";
  title: string;
  members: Member[];
  member_count?: number;
  last_seq: number;
  last_message: Message | null;
  unread_count: number;
  read_seq: number;
  muted_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface StreamEvent {
  cursor: string;
  type: string;
  data: any;
  created_at: string;
}

export interface ContactEntry {
  user: PublicUser;
  mutual: boolean;
}

export interface ExportInfo {
  id: string;
  status: "pending" | "running" | "ready" | "failed" | "expired";
  progress?: number;
  size: number | null;
  download_url: string | null;
  expires_at: string | null;
  created_at: string;
  error?: string | null;
}

export interface Receipts {
  delivered_seq: number | null;
  read_seq: number | null;
}
