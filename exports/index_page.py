"""The archive's index.html: one self-contained page, no network, no server.

The archive writer puts the data between INDEX_HEAD and INDEX_TAIL as JSON in a
`<script type="application/json">` block (every "<" escaped, so no message can
end the block). The script below renders it with `textContent` only, so text
from messages is never parsed as HTML. Media come from the archive's `media/`
folder by relative path. The open conversation is in the URL fragment
(`index.html#<conversation id>`), so the browser's back button works.
"""

INDEX_HEAD = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src 'self' data: file:; media-src 'self' file:;
               style-src 'unsafe-inline'; script-src 'unsafe-inline' 'self' file:">
<title>Your messages archive</title>
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; }
  body { margin: 0; display: flex; height: 100vh; }
  nav { width: 18rem; border-right: 1px solid #ddd; overflow-y: auto; background: #f7f7f8; }
  nav h1 { font-size: 1rem; margin: 1rem; }
  nav ul { list-style: none; margin: 0; padding: 0; }
  nav li a { display: block; padding: .6rem 1rem; color: inherit; text-decoration: none; }
  nav li a[aria-current="true"] { background: #e3e8ff; }
  nav .meta { display: block; font-size: .75rem; color: #666; }
  main { flex: 1; overflow-y: auto; padding: 1rem 1.5rem; }
  .message { margin: .5rem 0; max-width: 42rem; }
  .message .who { font-weight: 600; margin-right: .5rem; }
  .message time, .message .edited, .note { color: #777; font-size: .75rem; }
  .message .text { white-space: pre-wrap; overflow-wrap: anywhere; }
  .message.deleted .text { font-style: italic; color: #888; }
  .moment { border-bottom: 1px solid #eee; padding: .75rem 0; max-width: 42rem; }
  .moment .text { white-space: pre-wrap; overflow-wrap: anywhere; }
  .moment .media img, .moment .media video { max-width: 9rem; max-height: 9rem; margin: .25rem .25rem 0 0; }
  .moment .interactions { background: #f4f4f6; padding: .25rem .5rem; margin-top: .4rem; font-size: .9rem; }
  .moment time, .moment .place { color: #777; font-size: .75rem; margin-right: .5rem; }
  .pager { margin: .5rem 0; font-size: .85rem; }
  .pager a { margin-right: 1rem; }
  .message img, .message video { display: block; max-width: 20rem; max-height: 20rem; margin-top: .25rem; }
</style>
</head>
<body>
<nav><h1 id="archive-owner">Your archive</h1>
<ul><li><a id="moments-link" class="conversation-link" href="#moments" data-conversation-id="moments">Moments
<span class="meta" id="moments-count"></span></a></li></ul>
<ul id="conversation-list"></ul></nav>
<main id="conversation"><p class="note">Choose a conversation.</p></main>
<script type="application/json" id="archive-data">"""

INDEX_TAIL = b"""</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("archive-data").textContent);
  var list = document.getElementById("conversation-list");
  var main = document.getElementById("conversation");
  var byId = {};

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function when(value) { return value ? new Date(value).toLocaleString() : ""; }

  var owner = data.profile && data.profile.display_name;
  if (owner) { document.getElementById("archive-owner").textContent = "Archive of " + owner; }

  data.conversations.forEach(function (conversation) {
    byId[conversation.id] = conversation;
    var item = el("li");
    var link = el("a", "conversation-link", conversation.title || "Conversation");
    link.href = "#" + conversation.id;
    link.setAttribute("data-conversation-id", conversation.id);
    link.appendChild(el("span", "meta", conversation.type + " \\u00b7 " + conversation.message_count + " messages"));
    item.appendChild(link);
    list.appendChild(item);
  });

  function media(message) {
    if (!message.media) { return null; }
    var kind = message.attachment && message.attachment.kind;
    var node;
    if (kind === "image" || message.type === "image" || message.type === "sticker") {
      node = el("img");
      node.alt = "image";
      node.addEventListener("load", function () {
        node.setAttribute("data-loaded", "true");
        node.setAttribute("data-natural-width", String(node.naturalWidth));
      });
      node.addEventListener("error", function () { node.setAttribute("data-loaded", "false"); });
    } else if (kind === "voice" || message.type === "voice") {
      node = el("audio");
      node.controls = true;
      node.preload = "metadata";
    } else if (kind === "video" || message.type === "video") {
      node = el("video");
      node.controls = true;
      node.preload = "metadata";
    } else {
      node = el("a", null, "Open attachment");
      node.href = message.media;
      node.setAttribute("download", "");
      return node;
    }
    node.src = message.media;
    return node;
  }

  var moments = data.moments || [];
  document.getElementById("moments-count").textContent = moments.length + " posts";

  function renderMoments() {
    main.textContent = "";
    main.setAttribute("data-conversation-id", "moments");
    main.appendChild(el("h2", "title", "Moments"));
    if (!moments.length) { main.appendChild(el("p", "note", "No moments in this archive.")); }
    moments.slice().reverse().forEach(function (moment) {
      var row = el("div", "moment");
      row.setAttribute("data-moment-id", moment.id);
      row.appendChild(el("time", null, when(moment.created_at)));
      if (moment.location) {
        row.appendChild(el("span", "place", moment.location.name ||
          (moment.location.lat + ", " + moment.location.lng)));
      }
      row.appendChild(el("span", "place", "visible to: " + moment.visibility.mode));
      if (moment.text) { row.appendChild(el("div", "text", moment.text)); }
      var box = el("div", "media");
      moment.attachments.forEach(function (attachment) {
        var node = media({media: attachment.media, attachment: attachment});
        if (node) { box.appendChild(node); }
      });
      row.appendChild(box);
      if (moment.likes.length || moment.comments.length) {
        var interactions = el("div", "interactions");
        if (moment.likes.length) {
          interactions.appendChild(el("div", "likes", "\\u2665 " + moment.likes.map(function (like) {
            return like.user_name || "Unknown"; }).join(", ")));
        }
        moment.comments.forEach(function (comment) {
          interactions.appendChild(el("div", "comment", (comment.user_name || "Unknown") + ": " + comment.text));
        });
        row.appendChild(interactions);
      }
      main.appendChild(row);
    });
  }

  function render(id) {
    if (id === "moments") {
      Array.prototype.forEach.call(document.querySelectorAll(".conversation-link"), function (link) {
        link.setAttribute("aria-current", String(link.getAttribute("data-conversation-id") === "moments"));
      });
      renderMoments();
      return;
    }
    var parts = (id || "").split("/");
    var conversation = byId[parts[0]] || data.conversations[0];
    var page = conversation && conversation.pages ? Math.min(Math.max(parseInt(parts[1], 10) || 0, 0),
                                                              conversation.pages - 1) : 0;
    main.textContent = "";
    Array.prototype.forEach.call(document.querySelectorAll(".conversation-link"), function (link) {
      var current = Boolean(conversation) && link.getAttribute("data-conversation-id") === conversation.id;
      link.setAttribute("aria-current", String(current));
    });
    if (!conversation) { main.appendChild(el("p", "note", "No conversations in this archive.")); return; }
    main.setAttribute("data-conversation-id", conversation.id);
    main.setAttribute("data-page", String(page));
    main.appendChild(el("h2", "title", conversation.title || "Conversation"));
    var messages = page === 0 ? conversation.messages : (loaded[conversation.id] || {})[page];
    if (!messages) {
      main.setAttribute("data-loading", "true");
      main.appendChild(el("p", "note", "Loading\\u2026"));
      var script = document.createElement("script");
      script.src = "conversations/" + encodeURIComponent(conversation.id) + "/page-" + page + ".js";
      script.addEventListener("error", function () {
        main.textContent = "";
        main.appendChild(el("p", "note", "This page is missing from the archive folder: " + script.src));
      });
      document.body.appendChild(script);
      return;
    }
    main.removeAttribute("data-loading");
    if (conversation.pages > 1) { main.appendChild(pager(conversation, page)); }
    messages.forEach(function (message) {
      var row = el("div", "message" + (message.deleted ? " deleted" : ""));
      row.setAttribute("data-message-id", message.id);
      row.appendChild(el("span", "who", message.sender_name || "Unknown"));
      row.appendChild(el("time", null, when(message.created_at)));
      if (message.edited_at && !message.deleted) { row.appendChild(el("span", "edited", " (edited)")); }
      var text = message.deleted ? "This message was deleted." : message.text;
      if (message.location && !message.deleted) {
        text = (text ? text + "\\n" : "") + "Location: " + message.location.lat + ", " + message.location.lng;
      }
      if (text) { row.appendChild(el("div", "text", text)); }
      var attachment = message.deleted ? null : media(message);
      if (attachment) { row.appendChild(attachment); }
      main.appendChild(row);
    });
    if (conversation.pages > 1) { main.appendChild(pager(conversation, page)); }
  }

  // Older pages are scripts beside index.html (conversations/<id>/page-<n>.js), loaded on demand:
  // a page opened from disk may load scripts but not fetch files.
  var loaded = {};
  window.archivePage = function (conversationId, page, messages) {
    if (!byId[conversationId]) { return; }
    (loaded[conversationId] = loaded[conversationId] || {})[page] = messages;
    if (main.getAttribute("data-conversation-id") === conversationId &&
        main.getAttribute("data-page") === String(page)) { render(location.hash.slice(1)); }
  };

  function pager(conversation, page) {
    var nav = el("div", "pager");
    if (page + 1 < conversation.pages) {
      var older = el("a", "older", "Older messages");
      older.href = "#" + conversation.id + "/" + (page + 1);
      nav.appendChild(older);
    }
    if (page > 0) {
      var newer = el("a", "newer", "Newer messages");
      newer.href = "#" + conversation.id + "/" + (page - 1);
      nav.appendChild(newer);
    }
    nav.appendChild(el("span", "note", "Page " + (conversation.pages - page) + " of " + conversation.pages + " (" +
      conversation.message_count + " messages; all of them are also in conversations/" + conversation.id +
      "/messages.jsonl)"));
    return nav;
  }

  window.addEventListener("hashchange", function () { render(location.hash.slice(1)); });
  render(location.hash.slice(1));
}());
</script>
</body>
</html>
"""
