// Voice and video calls: WebRTC in the browser, signalled with the contract's call.* frames over
// the one socket. The server never carries media: it rings (a `call.ring` event in the callee's
// stream), relays answer and ICE between the two engaged devices, and ends calls (`call.ended`,
// sent as a frame and as a stored event: the first one seen wins, by call_id).
import { signal } from "@preact/signals";
import { api, uuid4 } from "./api";
import { addEventHook, addFrameHook, addResetHook, ensureUser, sendFrame, showToast } from "./store";
import type { StreamEvent } from "./types";

export type CallMedia = "audio" | "video";

export interface CallView {
  call_id: string;
  conversation_id: string;
  peer_id: string;
  media: CallMedia;
  direction: "outgoing" | "incoming";
  /** The server's view: ringing until answered, active, then ended. */
  state: "ringing" | "active" | "ended";
  /** The peer connection's own state (new, connecting, connected, failed, ...). */
  connection: string;
  reason?: string;
  answered_at?: number;
  ended_at?: number;
  muted: boolean;
  camera_off: boolean;
  local: MediaStream | null;
  remote: MediaStream | null;
  busy?: boolean;
}

export const currentCall = signal<CallView | null>(null);

interface Ringing {
  sdp: string;
  expires_at: string;
}

let pc: RTCPeerConnection | null = null;
let ringing: Ringing | null = null;
/** Local candidates waiting until our offer or answer is on its way (the server needs it first). */
let localCandidates: RTCIceCandidateInit[] | null = null;
/** Remote candidates that came before the remote description. */
let remoteCandidates: RTCIceCandidateInit[] = [];
let ringTimer: number | undefined;
let dismissTimer: number | undefined;
const finished = new Set<string>();

function update(patch: Partial<CallView>): void {
  if (currentCall.value) currentCall.value = { ...currentCall.value, ...patch };
}

function ref(callId: string, what: string): string {
  return `call:${callId}:${what}`;
}

async function iceServers(): Promise<RTCIceServer[]> {
  try {
    const turn = await api.get<{ urls: string[]; username: string; credential: string }>("/calls/turn");
    return turn.urls.length ? [{ urls: turn.urls, username: turn.username, credential: turn.credential }] : [];
  } catch {
    // No TURN: host candidates still connect peers on one network.
    return [];
  }
}

async function userMedia(media: CallMedia): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia({ audio: true, video: media === "video" });
}

async function peerConnection(callId: string): Promise<RTCPeerConnection> {
  const connection = new RTCPeerConnection({ iceServers: await iceServers() });
  connection.onicecandidate = (event) => {
    if (!event.candidate || currentCall.value?.call_id !== callId) return;
    const candidate = event.candidate.toJSON();
    if (localCandidates) localCandidates.push(candidate);
    else sendFrame({ type: "call.ice", ref: ref(callId, "ice"), call_id: callId, candidate });
  };
  connection.ontrack = (event) => {
    if (currentCall.value?.call_id !== callId) return;
    // One stream with every track the peer sends (each track comes in its own event).
    const tracks = currentCall.value.remote?.getTracks() ?? [];
    if (!tracks.includes(event.track)) update({ remote: new MediaStream([...tracks, event.track]) });
  };
  connection.onconnectionstatechange = () => {
    if (currentCall.value?.call_id === callId) update({ connection: connection.connectionState });
  };
  return connection;
}

function flushLocalCandidates(callId: string): void {
  const queued = localCandidates ?? [];
  localCandidates = null;
  for (const candidate of queued) sendFrame({ type: "call.ice", ref: ref(callId, "ice"), call_id: callId, candidate });
}

async function addRemoteCandidate(candidate: RTCIceCandidateInit | string | null): Promise<void> {
  if (!pc || candidate === null) return;
  const init: RTCIceCandidateInit = typeof candidate === "string" ? { candidate, sdpMid: "0", sdpMLineIndex: 0 } : candidate;
  if (!pc.remoteDescription) {
    remoteCandidates.push(init);
    return;
  }
  try {
    await pc.addIceCandidate(init);
  } catch {
    // A candidate the browser cannot use; the others may.
  }
}

async function drainRemoteCandidates(): Promise<void> {
  const queued = remoteCandidates;
  remoteCandidates = [];
  for (const candidate of queued) await addRemoteCandidate(candidate);
}

function teardown(): void {
  clearTimeout(ringTimer);
  pc?.close();
  pc = null;
  ringing = null;
  localCandidates = null;
  remoteCandidates = [];
  for (const track of currentCall.value?.local?.getTracks() ?? []) track.stop();
}

/** End the call here (the server was told, or told us); the card stays a moment, then goes. */
function finish(reason: string): void {
  const call = currentCall.value;
  if (!call || call.state === "ended") return;
  finished.add(call.call_id);
  teardown();
  update({ state: "ended", reason, ended_at: Date.now(), local: null, remote: null });
  clearTimeout(dismissTimer);
  const callId = call.call_id;
  dismissTimer = window.setTimeout(() => {
    if (currentCall.value?.call_id === callId) currentCall.value = null;
  }, 5000);
}

export function dismissCall(): void {
  if (currentCall.value?.state === "ended") currentCall.value = null;
}

function busy(): boolean {
  return currentCall.value !== null && currentCall.value.state !== "ended";
}

// --- what the person does -------------------------------------------------------------------

export async function startCall(conversationId: string, peerId: string, media: CallMedia): Promise<void> {
  if (busy()) return;
  clearTimeout(dismissTimer);
  const callId = uuid4();
  currentCall.value = {
    call_id: callId, conversation_id: conversationId, peer_id: peerId, media, direction: "outgoing",
    state: "ringing", connection: "new", muted: false, camera_off: false, local: null, remote: null,
  };
  try {
    const local = await userMedia(media);
    if (currentCall.value?.call_id !== callId) {
      for (const track of local.getTracks()) track.stop();
      return;
    }
    update({ local });
    localCandidates = [];
    pc = await peerConnection(callId);
    for (const track of local.getTracks()) pc.addTrack(track, local);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const sent = sendFrame({
      type: "call.offer", ref: ref(callId, "offer"), call_id: callId, conversation_id: conversationId,
      media, remote_control: false, sdp: offer.sdp,
    });
    if (!sent) {
      showToast("You are offline: the call could not be placed.");
      finish("failed");
      return;
    }
    flushLocalCandidates(callId);
  } catch (error) {
    showToast(`Cannot start the call: ${error instanceof Error ? error.message : String(error)}`);
    finish("failed");
  }
}

export async function acceptCall(): Promise<void> {
  const call = currentCall.value;
  if (!call || call.direction !== "incoming" || call.state !== "ringing" || !ringing || pc) return;
  const offer = ringing;
  clearTimeout(ringTimer);
  try {
    const local = await userMedia(call.media);
    if (currentCall.value?.call_id !== call.call_id || currentCall.value.state !== "ringing") {
      for (const track of local.getTracks()) track.stop();
      return;
    }
    update({ local });
    localCandidates = [];
    pc = await peerConnection(call.call_id);
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    for (const track of local.getTracks()) pc.addTrack(track, local);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (!sendFrame({ type: "call.answer", ref: ref(call.call_id, "answer"), call_id: call.call_id, sdp: answer.sdp })) {
      showToast("You are offline: the call could not be answered.");
      finish("failed");
      return;
    }
    flushLocalCandidates(call.call_id);
    await drainRemoteCandidates();
  } catch (error) {
    showToast(`Cannot answer: ${error instanceof Error ? error.message : String(error)}`);
    sendFrame({ type: "call.reject", ref: ref(call.call_id, "reject"), call_id: call.call_id });
    finish("failed");
  }
}

export function declineCall(): void {
  const call = currentCall.value;
  if (!call || call.state === "ended") return;
  sendFrame({ type: "call.reject", ref: ref(call.call_id, "reject"), call_id: call.call_id });
  finish("rejected");
}

export function hangUp(): void {
  const call = currentCall.value;
  if (!call || call.state === "ended") return;
  sendFrame({ type: "call.hangup", ref: ref(call.call_id, "hangup"), call_id: call.call_id });
  finish("hangup");
}

export function toggleMute(): void {
  const call = currentCall.value;
  if (!call?.local) return;
  const muted = !call.muted;
  for (const track of call.local.getAudioTracks()) track.enabled = !muted;
  update({ muted });
}

export function toggleCamera(): void {
  const call = currentCall.value;
  if (!call?.local) return;
  const off = !call.camera_off;
  for (const track of call.local.getVideoTracks()) track.enabled = !off;
  update({ camera_off: off });
}

// --- what the server says ---------------------------------------------------------------

function ring(data: any): void {
  const callId = String(data.call_id ?? "");
  if (!callId || finished.has(callId) || currentCall.value?.call_id === callId) return;
  // A ring replayed from the stream after it ran out is history, not a call.
  if (!data.expires_at || Date.parse(data.expires_at) <= Date.now()) return;
  // Already in a call: the server answers `busy` for us.
  if (busy()) return;
  if (data.group) return; // group calls (a mesh of legs) are not in the web client yet
  clearTimeout(dismissTimer);
  ringing = { sdp: data.sdp, expires_at: data.expires_at };
  currentCall.value = {
    call_id: callId, conversation_id: data.conversation_id, peer_id: data.caller_id,
    media: data.media === "video" ? "video" : "audio", direction: "incoming", state: "ringing",
    connection: "new", muted: false, camera_off: false, local: null, remote: null,
  };
  void ensureUser(data.caller_id);
  // The server ends an unanswered call as missed; stop ringing here at the same time even
  // if that frame is late.
  ringTimer = window.setTimeout(() => {
    if (currentCall.value?.call_id === callId && currentCall.value.state === "ringing") finish("missed");
  }, Math.max(0, Date.parse(data.expires_at) - Date.now()) + 2000);
}

function onFrame(frame: any): boolean {
  const type = String(frame.type ?? "");
  const call = currentCall.value;
  if (type === "error" && typeof frame.ref === "string" && frame.ref.startsWith("call:")) {
    const [, callId, what] = frame.ref.split(":");
    if (call && call.call_id === callId && call.state !== "ended" && what !== "ice") {
      showToast(frame.message || frame.code);
      finish(frame.code === "conflict" ? "answered_elsewhere" : "failed");
    }
    return true;
  }
  if (!type.startsWith("call.")) return false;
  const mine = call !== null && call.call_id === frame.call_id && call.state !== "ended";
  switch (type) {
    case "call.ok":
      if (mine && frame.state === "active" && call!.state !== "active") update({ state: "active", answered_at: Date.now() });
      if (mine && frame.state === "ended") finish("ended");
      break;
    case "call.answer":
      if (mine && call!.direction === "outgoing" && pc) {
        update({ state: "active", answered_at: Date.now() });
        pc.setRemoteDescription({ type: "answer", sdp: frame.sdp })
          .then(drainRemoteCandidates)
          .catch(() => hangUp());
      }
      break;
    case "call.ice":
      if (mine) void addRemoteCandidate(frame.candidate);
      break;
    case "call.update":
      if (mine && (frame.media === "audio" || frame.media === "video")) update({ media: frame.media });
      break;
    case "call.answered_elsewhere":
      if (mine) finish("answered_elsewhere");
      break;
    case "call.ended":
      if (mine) finish(frame.reason ?? "hangup");
      else finished.add(String(frame.call_id));
      break;
    default:
      break;
  }
  return true;
}

function onEvent(event: StreamEvent): void {
  if (event.type === "call.ring") ring(event.data ?? {});
  else if (event.type === "call.ended") onFrame({ type: "call.ended", ...(event.data ?? {}) });
}

addFrameHook(onFrame);
addEventHook(onEvent);
addResetHook(() => {
  teardown();
  finished.clear();
  currentCall.value = null;
});
