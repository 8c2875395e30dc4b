// A chat room connection: history first, then live frames; reconnects by itself with backoff
// and asks for what it missed (`hello` with the last message id).
import { request, token } from "./api";

export interface ChatMessage {
  id: string;
  user: { id: string; name: string; badges: string[] };
  text: string;
  ts: string;
}

export interface RoomState {
  messages: ChatMessage[];
  connected: boolean;
  canSend: boolean;
  canModerate: boolean;
  slowMode: number;
  ended: boolean;
  error: string | null;
}

type Frame = Record<string, any>;

const MAX_SHOWN = 200;

export class ChatRoom {
  state: RoomState = { messages: [], connected: false, canSend: false, canModerate: false, slowMode: 0, ended: false, error: null };
  private ws: WebSocket | null = null;
  private closed = false;
  private attempt = 0;
  private refs = 0;
  private timer: number | undefined;

  constructor(private streamId: string, private onChange: (s: RoomState) => void) {}

  async open() {
    try {
      const page = await request<{ items: ChatMessage[] }>("GET", `/api/streams/${this.streamId}/chat?limit=50`);
      this.state.messages = page.items.reverse();
      this.emit();
    } catch {
      // History is a nicety; the live room still works.
    }
    this.connect();
  }

  private connect() {
    if (this.closed) return;
    // The page's own origin, as for every other route.
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/streams/${this.streamId}/chat`;
    const t = token();
    const ws = t ? new WebSocket(url, ["onair.chat.v1", `access_token.${t}`]) : new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      const last = this.state.messages[this.state.messages.length - 1];
      if (last) ws.send(JSON.stringify({ type: "hello", last_id: last.id }));
    };
    ws.onmessage = (e) => {
      try {
        this.handle(JSON.parse(e.data));
      } catch {
        /* a frame we cannot read is skipped */
      }
    };
    ws.onclose = () => {
      this.state.connected = false;
      this.emit();
      if (this.closed || this.state.ended) return;
      const wait = Math.min(15000, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }

  private handle(f: Frame) {
    const s = this.state;
    switch (f.type) {
      case "batch":
        (f.events as Frame[]).forEach((e) => this.handle(e));
        return;
      case "hello":
        s.connected = true;
        s.canSend = !!f.can_send;
        s.canModerate = !!f.can_moderate;
        s.slowMode = f.slow_mode ?? 0;
        break;
      case "message":
        if (!s.messages.some((m) => m.id === f.id)) {
          s.messages = [...s.messages, { id: f.id, user: f.user, text: f.text, ts: f.ts }].slice(-MAX_SHOWN);
        }
        break;
      case "delete":
        s.messages = s.messages.filter((m) => m.id !== f.message_id);
        break;
      case "clear":
        s.messages = [];
        break;
      case "ban":
        s.messages = s.messages.filter((m) => m.user.id !== f.user_id);
        break;
      case "slow_mode":
        s.slowMode = f.seconds;
        break;
      case "ended":
        s.ended = true;
        break;
      case "error":
        s.error = f.message;
        break;
      case "ack":
        s.error = null;
        break;
      default:
        return;
    }
    this.emit();
  }

  send(text: string): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      this.state.error = "not connected; reconnecting…";
      this.emit();
      return false;
    }
    this.state.error = null;
    this.ws.send(JSON.stringify({ type: "send", text, ref: `c${++this.refs}` }));
    return true;
  }

  async moderate(action: Record<string, unknown>) {
    await request("POST", `/api/streams/${this.streamId}/chat/moderation`, action);
  }

  async report(messageId: string) {
    await request("POST", `/api/streams/${this.streamId}/chat/reports`, { message_id: messageId, reason: "reported from the web app" });
  }

  close() {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.ws?.close();
  }

  private emit() {
    this.onChange({ ...this.state });
  }
}

