// Moments (朋友圈): the timeline and a person's page, read with the contract's cursor paging and kept
// fresh by `moment.new` / `moment.interaction`. Likes and comments are shown exactly as the server
// returns them: it alone decides who sees whose (WeChat's rule: only your friends' ones, all of them
// on your own posts).
import { signal } from "@preact/signals";
import { api, uploadAttachment, uuid4 } from "./api";
import { path } from "./router";
import { addEventHook, addResetHook, ensureUser, me } from "./store";
import type { Attachment, StreamEvent } from "./types";

export type VisibilityMode = "friends" | "only" | "except" | "private";

export interface MomentLike {
  user_id: string;
  created_at: string;
}

export interface MomentComment {
  id: string;
  user_id: string;
  text: string;
  reply_to_user_id: string | null;
  created_at: string;
}

export interface Moment {
  id: string;
  author_id: string;
  text: string;
  attachments: Attachment[];
  location: { lat: number; lng: number; name?: string } | null;
  visibility: { mode: VisibilityMode; user_ids: string[] };
  created_at: string;
  likes: MomentLike[];
  comments: MomentComment[];
}

interface Page {
  moments: Moment[];
  cursor: string | null;
  has_more: boolean;
}

export interface Feed {
  moments: Moment[];
  cursor: string | null;
  hasMore: boolean;
  loading: boolean;
  error?: string;
}

/** Feeds by source: "timeline" or a user id (that person's page). */
export const feeds = signal<Record<string, Feed>>({});
/** New posts announced by `moment.new` since the timeline was last looked at. */
export const newMoments = signal(0);

const PAGE = 20;
// Re-reading the loaded part of a feed after an event walks at most this many pages from the top.
const REFRESH_PAGES = 5;

function sourcePath(source: string): string {
  return source === "timeline" ? "/moments" : `/users/${source}/moments`;
}

function setFeed(source: string, feed: Feed): void {
  feeds.value = { ...feeds.value, [source]: feed };
}

/** Newest first by (created_at, id), the server's order. */
function older(a: Moment, b: Moment): boolean {
  return a.created_at < b.created_at || (a.created_at === b.created_at && a.id < b.id);
}

function rememberAuthors(list: Moment[]): void {
  for (const moment of list) {
    void ensureUser(moment.author_id);
    for (const like of moment.likes) void ensureUser(like.user_id);
    for (const comment of moment.comments) void ensureUser(comment.user_id);
  }
}

export async function loadFeed(source: string, more = false): Promise<void> {
  const current = feeds.value[source];
  if (current?.loading) return;
  if (more && !current?.hasMore) return;
  setFeed(source, { moments: current?.moments ?? [], cursor: current?.cursor ?? null, hasMore: current?.hasMore ?? false, loading: true });
  try {
    const page = await api.get<Page>(sourcePath(source), { limit: PAGE, before: more ? current?.cursor : undefined });
    rememberAuthors(page.moments);
    const latest = feeds.value[source];
    const kept = more ? latest?.moments ?? [] : [];
    const ids = new Set(kept.map((m) => m.id));
    setFeed(source, {
      moments: [...kept, ...page.moments.filter((m) => !ids.has(m.id))],
      cursor: page.cursor,
      hasMore: page.has_more,
      loading: false,
    });
  } catch (error) {
    const latest = feeds.value[source];
    setFeed(source, { ...(latest ?? { moments: [], cursor: null, hasMore: false }), loading: false, error: String(error) });
    throw error;
  }
}

/**
 * Re-read the loaded part of a feed from the top (new posts, likes, comments, deletions), page by
 * page until past the oldest post shown; posts older than that are kept as they were.
 */
export async function refreshFeed(source: string): Promise<void> {
  const current = feeds.value[source];
  if (!current || current.loading) return;
  const oldest = current.moments[current.moments.length - 1];
  const fresh: Moment[] = [];
  let cursor: string | null = null;
  let hasMore = false;
  for (let i = 0; i < REFRESH_PAGES; i++) {
    const page: Page = await api.get<Page>(sourcePath(source), { limit: PAGE, before: cursor ?? undefined });
    fresh.push(...page.moments);
    cursor = page.cursor;
    hasMore = page.has_more;
    if (!hasMore || !oldest) break;
    const last = fresh[fresh.length - 1];
    if (last && (last.id === oldest.id || older(last, oldest))) break;
  }
  rememberAuthors(fresh);
  const latest = feeds.value[source] ?? current;
  const last = fresh[fresh.length - 1];
  const ids = new Set(fresh.map((m) => m.id));
  const tail = last && hasMore ? latest.moments.filter((m) => !ids.has(m.id) && older(m, last)) : [];
  setFeed(source, {
    moments: [...fresh, ...tail],
    cursor: tail.length ? latest.cursor : cursor,
    hasMore: tail.length ? latest.hasMore : hasMore,
    loading: false,
  });
}

function refreshLoaded(onlyWith?: string): void {
  for (const [source, feed] of Object.entries(feeds.value)) {
    if (onlyWith && !feed.moments.some((m) => m.id === onlyWith)) continue;
    void refreshFeed(source).catch(() => {});
  }
}

export function seenNewMoments(): void {
  newMoments.value = 0;
}

// --- writing ----------------------------------------------------------------------------

export interface Draft {
  text: string;
  files: File[];
  mode: VisibilityMode;
  userIds: string[];
}

/**
 * Upload the images (as chat photos are), then post; one client_id for the post's retries, and
 * `uploaded` remembers the images already on the server so a retry does not upload them again.
 */
export async function postMoment(draft: Draft, clientId: string = uuid4(), uploaded = new Map<File, string>()): Promise<Moment> {
  const attachmentIds: string[] = [];
  for (const file of draft.files) {
    let id = uploaded.get(file);
    if (!id) {
      id = (await uploadAttachment(file, file.name || "photo.jpg", "image")).id as string;
      uploaded.set(file, id);
    }
    attachmentIds.push(id);
  }
  const body: Record<string, unknown> = {
    client_id: clientId,
    visibility: { mode: draft.mode, user_ids: draft.mode === "only" || draft.mode === "except" ? draft.userIds : [] },
  };
  if (draft.text.trim()) body.text = draft.text.trim();
  if (attachmentIds.length) body.attachment_ids = attachmentIds;
  const moment = await api.post<Moment>("/moments", body);
  rememberAuthors([moment]);
  // Shown at once at the top of the timeline and of one's own page.
  for (const source of ["timeline", me.value?.id ?? ""]) {
    const feed = feeds.value[source];
    if (feed && !feed.moments.some((m) => m.id === moment.id)) setFeed(source, { ...feed, moments: [moment, ...feed.moments] });
  }
  return moment;
}

function replaceMoment(moment: Moment): void {
  const next: Record<string, Feed> = {};
  for (const [source, feed] of Object.entries(feeds.value)) {
    next[source] = feed.moments.some((m) => m.id === moment.id)
      ? { ...feed, moments: feed.moments.map((m) => (m.id === moment.id ? moment : m)) }
      : feed;
  }
  feeds.value = next;
}

function findMoment(id: string): Moment | undefined {
  for (const feed of Object.values(feeds.value)) {
    const found = feed.moments.find((m) => m.id === id);
    if (found) return found;
  }
  return undefined;
}

export async function deleteMoment(id: string): Promise<void> {
  await api.del(`/moments/${id}`);
  const next: Record<string, Feed> = {};
  for (const [source, feed] of Object.entries(feeds.value)) next[source] = { ...feed, moments: feed.moments.filter((m) => m.id !== id) };
  feeds.value = next;
}

export async function setLiked(id: string, liked: boolean): Promise<void> {
  if (liked) await api.post(`/moments/${id}/like`);
  else await api.del(`/moments/${id}/like`);
  const moment = findMoment(id);
  const mine = me.value?.id;
  if (moment && mine) {
    const likes = moment.likes.filter((like) => like.user_id !== mine);
    if (liked) likes.push({ user_id: mine, created_at: new Date().toISOString() });
    replaceMoment({ ...moment, likes });
  }
}

export async function addComment(id: string, text: string, replyTo: string | null, clientId: string = uuid4()): Promise<void> {
  const comment = await api.post<MomentComment>(`/moments/${id}/comments`, {
    client_id: clientId,
    text,
    ...(replyTo ? { reply_to_user_id: replyTo } : {}),
  });
  const moment = findMoment(id);
  if (moment && !moment.comments.some((c) => c.id === comment.id)) replaceMoment({ ...moment, comments: [...moment.comments, comment] });
}

export async function deleteComment(id: string, commentId: string): Promise<void> {
  await api.del(`/moments/${id}/comments/${commentId}`);
  const moment = findMoment(id);
  if (moment) replaceMoment({ ...moment, comments: moment.comments.filter((c) => c.id !== commentId) });
}

// --- events -------------------------------------------------------------------------------

addEventHook((event: StreamEvent) => {
  const data = event.data ?? {};
  if (event.type === "moment.new") {
    // The badge counts posts not yet seen: none while the timeline is on screen.
    if (path.value !== "/moments") newMoments.value = newMoments.value + 1;
    if (data.author_id) void ensureUser(data.author_id);
    // Loaded feeds (the timeline, the author's page) are re-read so the post shows live.
    for (const source of Object.keys(feeds.value)) {
      if (source === "timeline" || source === data.author_id) void refreshFeed(source).catch(() => {});
    }
  } else if (event.type === "moment.interaction") {
    if (data.user_id) void ensureUser(data.user_id);
    refreshLoaded(data.moment_id);
  }
});

addResetHook(() => {
  feeds.value = {};
  newMoments.value = 0;
});
