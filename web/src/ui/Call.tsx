import { useEffect, useRef, useState } from "preact/hooks";
import { acceptCall, currentCall, declineCall, dismissCall, hangUp, toggleCamera, toggleMute } from "../lib/calls";
import { duration } from "../lib/format";
import { userName } from "../lib/store";
import { Avatar } from "./common";
import { Icon } from "./icons";

function StreamView(props: { stream: MediaStream | null; kind: "video" | "audio"; muted?: boolean; testId: string; class?: string }) {
  const ref = useRef<HTMLVideoElement & HTMLAudioElement>(null);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    if (element.srcObject !== props.stream) element.srcObject = props.stream;
    if (props.stream) element.play().catch(() => {});
  }, [props.stream]);
  if (props.kind === "audio") return <audio ref={ref} autoplay data-testid={props.testId} />;
  return <video ref={ref} class={props.class} autoplay playsInline muted={props.muted} data-testid={props.testId} />;
}

const ENDED: Record<string, string> = {
  hangup: "Call ended",
  rejected: "Call declined",
  missed: "No answer",
  busy: "Busy",
  failed: "Call failed",
  answered_elsewhere: "Answered on another device",
  ended: "Call ended",
};

/** The call card: ringing (in or out), the call itself, and a moment of "call ended". */
export function CallScreen() {
  const call = currentCall.value;
  const [, tick] = useState(0);
  useEffect(() => {
    if (call?.state !== "active") return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [call?.state, call?.call_id]);
  if (!call) return null;
  const name = userName(call.peer_id);
  const video = call.media === "video";
  let status: string;
  if (call.state === "ringing") {
    status = call.direction === "incoming" ? `Incoming ${video ? "video" : "voice"} call` : "Calling…";
  } else if (call.state === "active") {
    status = call.connection === "connected" || !call.answered_at
      ? duration(Date.now() - (call.answered_at ?? Date.now()))
      : "Connecting…";
  } else {
    const length = call.answered_at && call.ended_at ? ` · ${duration(call.ended_at - call.answered_at)}` : "";
    status = (ENDED[call.reason ?? "ended"] ?? "Call ended") + length;
  }
  const showVideo = video && call.state === "active";
  return (
    <div
      class={`call-screen${showVideo ? " with-video" : ""}`}
      data-testid="call"
      data-state={call.state}
      data-direction={call.direction}
      data-media={call.media}
      data-connection={call.connection}
      role="dialog"
      aria-label={status}
    >
      {showVideo && <StreamView stream={call.remote} kind="video" testId="remote-video" class="remote-video" />}
      {!video && call.remote && <StreamView stream={call.remote} kind="audio" testId="remote-audio" />}
      <div class="call-card">
        {!showVideo && <Avatar userId={call.peer_id} name={name} />}
        <div class="call-name" data-testid="call-peer">{name}</div>
        <div class="call-status" data-testid="call-status">{status}</div>
      </div>
      {showVideo && call.local && (
        <StreamView stream={call.local} kind="video" muted testId="local-video" class={`local-video${call.camera_off ? " off" : ""}`} />
      )}
      <div class="call-actions">
        {call.state === "ringing" && call.direction === "incoming" && (
          <>
            <button class="round decline" aria-label="Decline" title="Decline" data-testid="call-decline" onClick={declineCall}>
              <Icon name="hangup" />
            </button>
            <button class="round accept" aria-label="Answer" title="Answer" data-testid="call-accept" onClick={() => void acceptCall()}>
              <Icon name={video ? "video" : "phone"} />
            </button>
          </>
        )}
        {call.state === "active" && (
          <>
            <button class={`round${call.muted ? " on" : ""}`} aria-label={call.muted ? "Unmute" : "Mute"} title={call.muted ? "Unmute" : "Mute"}
              data-testid="call-mute" aria-pressed={call.muted} onClick={toggleMute}>
              <Icon name={call.muted ? "micOff" : "mic"} />
            </button>
            {video && (
              <button class={`round${call.camera_off ? " on" : ""}`} aria-label={call.camera_off ? "Camera on" : "Camera off"}
                title={call.camera_off ? "Camera on" : "Camera off"} data-testid="call-camera" aria-pressed={call.camera_off} onClick={toggleCamera}>
                <Icon name={call.camera_off ? "videoOff" : "video"} />
              </button>
            )}
          </>
        )}
        {(call.state === "active" || (call.state === "ringing" && call.direction === "outgoing")) && (
          <button class="round decline" aria-label="Hang up" title="Hang up" data-testid="call-hangup" onClick={hangUp}>
            <Icon name="hangup" />
          </button>
        )}
        {call.state === "ended" && (
          <button class="small" data-testid="call-close" onClick={dismissCall}>Close</button>
        )}
      </div>
    </div>
  );
}
