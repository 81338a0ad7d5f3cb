import { useEffect, useState } from "preact/hooks";
import { api, uuid4 } from "../lib/api";
import { shortDate } from "../lib/format";
import { blobUrl } from "../lib/media";
import {
  addComment,
  deleteComment,
  deleteMoment,
  feeds,
  loadFeed,
  postMoment,
  seenNewMoments,
  setLiked,
} from "../lib/moments";
import type { Moment, VisibilityMode } from "../lib/moments";
import { navigate } from "../lib/router";
import { me, showToast, userName } from "../lib/store";
import type { Attachment, ContactEntry } from "../lib/types";
import { Avatar, errorText, Header, Spinner } from "./common";
import { Icon } from "./icons";

const MAX_IMAGES = 9;
const VISIBILITY: Record<VisibilityMode, string> = {
  friends: "All friends",
  only: "Only these friends",
  except: "All friends except",
  private: "Only me",
};

/** The timeline: one's own and one's friends' posts, newest first. */
export function MomentsPage() {
  useEffect(() => {
    seenNewMoments();
    loadFeed("timeline").catch(() => {});
  }, []);
  return (
    <div class="pane" data-testid="moments">
      <Header title="Moments" back="/">
        <button class="link" data-testid="my-moments" onClick={() => navigate(`/moments/user/${me.value!.id}`)}>My posts</button>
      </Header>
      <div class="pane-body moments-body">
        <Composer />
        <FeedList source="timeline" empty="No posts yet. Share something, or add friends: you see the posts of people who have your number as you have theirs." />
      </div>
    </div>
  );
}

/** One person's posts that you may see (limited by their `moments_window`). */
export function PersonMoments(props: { userId: string }) {
  useEffect(() => {
    loadFeed(props.userId).catch(() => {});
  }, [props.userId]);
  const mine = props.userId === me.value?.id;
  return (
    <div class="pane" data-testid="person-moments">
      <Header title={mine ? "My posts" : userName(props.userId)} subtitle="Moments" back="/moments" />
      <div class="pane-body moments-body">
        <div class="moments-person">
          <Avatar userId={props.userId} name={mine ? me.value?.display_name ?? "" : userName(props.userId)} />
          <span class="moment-author">{mine ? me.value?.display_name || "You" : userName(props.userId)}</span>
        </div>
        <FeedList source={props.userId} empty={mine ? "You have not posted yet." : "Nothing to see here."} />
      </div>
    </div>
  );
}

function FeedList(props: { source: string; empty: string }) {
  const feed = feeds.value[props.source];
  if (!feed || (feed.loading && feed.moments.length === 0)) return <Spinner />;
  if (feed.error && feed.moments.length === 0) {
    return (
      <p class="error">
        Could not load the posts. <button class="link" onClick={() => loadFeed(props.source).catch(() => {})}>Try again</button>
      </p>
    );
  }
  return (
    <>
      {feed.moments.length === 0 && <p class="muted" data-testid="moments-empty">{props.empty}</p>}
      <ul class="moment-list" data-testid="moment-list">
        {feed.moments.map((moment) => <MomentCard key={moment.id} moment={moment} />)}
      </ul>
      {feed.hasMore && (
        <button class="link more" data-testid="moments-more" disabled={feed.loading}
          onClick={() => loadFeed(props.source, true).catch((e) => showToast(errorText(e)))}>
          Older posts
        </button>
      )}
    </>
  );
}

function Composer() {
  const [text, setText] = useState("");
  const [files, setFiles] = useState<Array<{ file: File; url: string }>>([]);
  const [mode, setMode] = useState<VisibilityMode>("friends");
  const [picked, setPicked] = useState<string[]>([]);
  const [friends, setFriends] = useState<ContactEntry[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // One client_id per post, kept across retries of the same draft.
  const [clientId, setClientId] = useState(uuid4);
  const [uploaded, setUploaded] = useState(() => new Map<File, string>());

  useEffect(() => {
    if ((mode === "only" || mode === "except") && friends === null) {
      api.get<ContactEntry[]>("/contacts").then((list) => setFriends(list.filter((entry) => entry.mutual))).catch(() => setFriends([]));
    }
  }, [mode]);

  function addFiles(list: FileList | null) {
    if (!list) return;
    const images = [...list].filter((file) => file.type.startsWith("image/"));
    const room = MAX_IMAGES - files.length;
    if (images.length > room) setError(`Up to ${MAX_IMAGES} photos in a post.`);
    setFiles([...files, ...images.slice(0, Math.max(room, 0)).map((file) => ({ file, url: URL.createObjectURL(file) }))]);
  }

  function removeFile(index: number) {
    URL.revokeObjectURL(files[index].url);
    setFiles(files.filter((_, i) => i !== index));
  }

  async function submit(event: Event) {
    event.preventDefault();
    if (!text.trim() && files.length === 0) return setError("Write something or add a photo.");
    if ((mode === "only" || mode === "except") && picked.length === 0) return setError("Choose at least one friend.");
    setBusy(true);
    setError(null);
    try {
      await postMoment({ text, files: files.map((f) => f.file), mode, userIds: picked }, clientId, uploaded);
      for (const f of files) URL.revokeObjectURL(f.url);
      setText("");
      setFiles([]);
      setPicked([]);
      setMode("friends");
      setClientId(uuid4());
      setUploaded(new Map());
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="card moment-composer" data-testid="moment-composer" onSubmit={submit}>
      <textarea rows={3} placeholder="What's new?" maxLength={2000} value={text} data-testid="moment-input"
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
      {files.length > 0 && (
        <div class={`moment-grid n${Math.min(files.length, 3)}`}>
          {files.map((f, i) => (
            <div class="moment-thumb" key={f.url}>
              <img src={f.url} alt="" data-testid="moment-draft-image" />
              <button type="button" class="remove" aria-label="Remove photo" onClick={() => removeFile(i)}>×</button>
            </div>
          ))}
        </div>
      )}
      <div class="moment-composer-row">
        <label class={`button small${files.length >= MAX_IMAGES ? " disabled" : ""}`} title="Add photos (up to 9)">
          <Icon name="camera" size={18} /> Photos
          <input type="file" accept="image/*" multiple hidden data-testid="moment-files" disabled={files.length >= MAX_IMAGES}
            onChange={(e) => {
              addFiles((e.target as HTMLInputElement).files);
              (e.target as HTMLInputElement).value = "";
            }} />
        </label>
        <select value={mode} data-testid="moment-visibility" aria-label="Who can see it"
          onChange={(e) => {
            setMode((e.target as HTMLSelectElement).value as VisibilityMode);
            setPicked([]);
          }}>
          {(Object.keys(VISIBILITY) as VisibilityMode[]).map((key) => <option value={key} key={key}>{VISIBILITY[key]}</option>)}
        </select>
        <span class="spacer" />
        <button class="primary" type="submit" disabled={busy} data-testid="moment-post">{busy ? "Posting…" : "Post"}</button>
      </div>
      {(mode === "only" || mode === "except") && (
        <div class="moment-friends" data-testid="moment-friends">
          {friends === null ? <Spinner /> : friends.length === 0 ? <span class="muted small">No friends yet.</span> : friends.map((entry) => (
            <label key={entry.user.id} class="check">
              <input type="checkbox" checked={picked.includes(entry.user.id)} data-testid="moment-friend"
                onChange={(e) => {
                  const on = (e.target as HTMLInputElement).checked;
                  setPicked(on ? [...picked, entry.user.id] : picked.filter((id) => id !== entry.user.id));
                }} />
              {entry.user.display_name || "Unnamed"}
            </label>
          ))}
        </div>
      )}
      {error && <p class="error" data-testid="moment-error">{error}</p>}
    </form>
  );
}

/** A post's one video (apps may post one instead of photos), fetched with the token like photos. */
function MomentVideo(props: { attachment: Attachment }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    blobUrl(props.attachment.url).then((url) => live && setSrc(url)).catch(() => {});
    return () => {
      live = false;
    };
  }, [props.attachment.url]);
  return src ? <video class="moment-video" controls preload="metadata" src={src} data-testid="moment-video" /> : <div class="image-placeholder" />;
}

function MomentImage(props: { attachment: Attachment; onOpen: () => void }) {
  const [src, setSrc] = useState<string | null>(null);
  const source = props.attachment.thumbnail_url ?? props.attachment.url;
  useEffect(() => {
    let live = true;
    blobUrl(source).then((url) => live && setSrc(url)).catch(() => {});
    return () => {
      live = false;
    };
  }, [source]);
  return (
    <button type="button" class="moment-thumb" onClick={props.onOpen} aria-label="Open photo">
      {src ? <img src={src} alt={props.attachment.name ?? "Photo"} data-testid="moment-image" /> : <div class="image-placeholder" />}
    </button>
  );
}

function MomentCard(props: { moment: Moment }) {
  const m = props.moment;
  const mine = m.author_id === me.value?.id;
  const liked = m.likes.some((like) => like.user_id === me.value?.id);
  const [comment, setComment] = useState("");
  const [replyTo, setReplyTo] = useState<string | null>(null);
  const [commenting, setCommenting] = useState(false);
  const [viewer, setViewer] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function act(work: () => Promise<void>) {
    setBusy(true);
    try {
      await work();
    } catch (e) {
      showToast(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function send(event: Event) {
    event.preventDefault();
    const text = comment.trim();
    if (!text) return;
    await act(async () => {
      await addComment(m.id, text, replyTo);
      setComment("");
      setReplyTo(null);
      setCommenting(false);
    });
  }

  return (
    <li class="moment card" data-testid="moment" data-moment-id={m.id} data-author={userName(m.author_id)}>
      <div class="moment-head">
        <Avatar userId={m.author_id} name={mine ? me.value?.display_name ?? "" : userName(m.author_id)} />
        <div class="moment-main">
          <button class="link moment-author" data-testid="moment-author" onClick={() => navigate(`/moments/user/${m.author_id}`)}>
            {mine ? me.value?.display_name || "You" : userName(m.author_id)}
          </button>
          {m.text && <p class="moment-text" data-testid="moment-text">{m.text}</p>}
          {m.attachments.length > 0 && (
            <div class={`moment-grid n${Math.min(m.attachments.length, 3)}`}>
              {m.attachments.map((attachment) => attachment.kind === "video" ? <MomentVideo key={attachment.id} attachment={attachment} /> : (
                <MomentImage key={attachment.id} attachment={attachment} onOpen={() => setViewer(attachment.url)} />
              ))}
            </div>
          )}
          {m.location && (
            <div class="muted small moment-place" data-testid="moment-location">
              <Icon name="pin" size={14} /> {m.location.name || `${m.location.lat.toFixed(4)}, ${m.location.lng.toFixed(4)}`}
            </div>
          )}
          <div class="moment-meta">
            <span class="muted small" title={new Date(m.created_at).toLocaleString()}>{shortDate(m.created_at)}</span>
            {mine && m.visibility.mode !== "friends" && (
              <span class="tag" data-testid="moment-visibility-tag">{VISIBILITY[m.visibility.mode]}</span>
            )}
            {mine && (
              <button class="link danger small" data-testid="moment-delete" disabled={busy}
                onClick={() => confirm("Delete this post?") && act(() => deleteMoment(m.id))}>
                Delete
              </button>
            )}
            <span class="actions">
            <button class={`small${liked ? " liked" : ""}`} data-testid="moment-like" aria-pressed={liked} disabled={busy}
              onClick={() => act(() => setLiked(m.id, !liked))}>
              {liked ? "♥ Liked" : "♡ Like"}
            </button>
            <button class="small" data-testid="moment-comment-open" onClick={() => { setCommenting(!commenting); setReplyTo(null); }}>
              Comment
            </button>
            </span>
          </div>
          {(m.likes.length > 0 || m.comments.length > 0) && (
            <div class="moment-social">
              {m.likes.length > 0 && (
                <div class="moment-likes" data-testid="moment-likes">
                  ♥ {m.likes.map((like) => (like.user_id === me.value?.id ? "You" : userName(like.user_id))).join(", ")}
                </div>
              )}
              {m.comments.length > 0 && (
                <ul class="moment-comments">
                  {m.comments.map((c) => (
                    <li key={c.id} data-testid="moment-comment" data-comment-id={c.id}>
                      <button class="link comment-body" title="Reply" onClick={() => {
                        if (c.user_id === me.value?.id) return;
                        setReplyTo(c.user_id);
                        setCommenting(true);
                      }}>
                        <b>{c.user_id === me.value?.id ? "You" : userName(c.user_id)}</b>
                        {c.reply_to_user_id && <> replied to <b>{c.reply_to_user_id === me.value?.id ? "you" : userName(c.reply_to_user_id)}</b></>}
                        : <span data-testid="moment-comment-text">{c.text}</span>
                      </button>
                      {(mine || c.user_id === me.value?.id) && (
                        <button class="link small muted" aria-label="Delete comment" data-testid="moment-comment-delete"
                          onClick={() => act(() => deleteComment(m.id, c.id))}>×</button>
                      )}
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
          {commenting && (
            <form class="row-form moment-comment-form" onSubmit={send}>
              <input value={comment} maxLength={1000} autoFocus data-testid="moment-comment-input"
                placeholder={replyTo ? `Reply to ${userName(replyTo)}` : "Comment"}
                onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
              <button class="primary small" type="submit" disabled={busy || !comment.trim()} data-testid="moment-comment-send">Send</button>
            </form>
          )}
        </div>
      </div>
      {viewer && <PhotoViewer url={viewer} onClose={() => setViewer(null)} />}
    </li>
  );
}

function PhotoViewer(props: { url: string; onClose: () => void }) {
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
