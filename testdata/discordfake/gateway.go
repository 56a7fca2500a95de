package discordfake

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"
)

// session is a gateway session: it outlives its connection so a client can
// RESUME and get what it missed.
type session struct {
	id      string
	bot     *Bot
	intents int
	seq     int64
	buf     []sent // recent dispatches for replay
	conn    *conn  // nil while disconnected
	dropped time.Time
	invalid bool
}

type sent struct {
	seq  int64
	data []byte
}

// maxReplay bounds the dispatches a session keeps for RESUME.
const maxReplay = 4096

// conn is one websocket; writes go through a queue so the fake never
// blocks on a slow client while holding its lock.
type conn struct {
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{}
	sess *session // guarded by Server.mu
}

func (c *conn) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.sendRaw(b)
}

func (c *conn) sendRaw(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		// A client this far behind would be disconnected by Discord too.
		c.ws.Close()
	}
}

func (c *conn) writer() {
	for {
		select {
		case b := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.ws.Close()
				return
			}
		case <-c.done:
			return
		}
	}
}

// closeWith ends the connection with a gateway close code, as Discord does
// for fatal errors.
func (c *conn) closeWith(code int, text string) {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	c.ws.Close()
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.connects.Add(1)
	c := &conn{ws: ws, out: make(chan []byte, 1024), done: make(chan struct{})}
	s.mu.Lock()
	s.conns[ws] = c
	s.mu.Unlock()
	go c.writer()
	defer func() {
		close(c.done)
		ws.Close()
		s.mu.Lock()
		delete(s.conns, ws)
		if c.sess != nil && c.sess.conn == c {
			c.sess.conn = nil
			c.sess.dropped = time.Now()
		}
		s.mu.Unlock()
	}()
	c.send(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": s.HeartbeatInterval.Milliseconds()}})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.closeWith(4002, "Error while decoding payload.")
			return
		}
		switch f.Op {
		case 1: // heartbeat
			if !s.noAcks.Load() {
				c.send(map[string]any{"op": 11, "d": nil})
			}
		case 2: // identify
			var id struct {
				Token   string `json:"token"`
				Intents int    `json:"intents"`
			}
			json.Unmarshal(f.D, &id)
			if code, text := s.identify(c, id.Token, id.Intents); code != 0 {
				c.closeWith(code, text)
				return
			}
		case 6: // resume
			var rs struct {
				Token     string `json:"token"`
				SessionID string `json:"session_id"`
				Seq       int64  `json:"seq"`
			}
			json.Unmarshal(f.D, &rs)
			s.resume(c, rs.Token, rs.SessionID, rs.Seq)
		}
	}
}

// identify starts a session, or returns the close code that refuses it.
func (s *Server) identify(c *conn, token string, intents int) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bots[trimBot(token)]
	if b != nil && s.Identify != nil {
		if code := s.Identify(b.id, intents); code != 0 {
			return code, "Closed by test hook."
		}
	}
	if b == nil || b.revoked {
		return CloseAuthenticationFailed, "Authentication failed."
	}
	if intents&IntentMessageContent != 0 && !b.MessageContent {
		return CloseDisallowedIntents, "Disallowed intent(s)."
	}
	ss := &session{id: s.newIDLocked(), bot: b, intents: intents, conn: c}
	s.sessions[ss.id] = ss
	c.sess = ss
	var guilds []map[string]any
	for _, g := range sortedCopy(b.Guilds) {
		if _, ok := s.guilds[g]; ok {
			guilds = append(guilds, map[string]any{"id": g, "unavailable": true})
		}
	}
	s.sendLocked(ss, "READY", map[string]any{
		"v": 9, "user": userJSON(b), "session_id": ss.id, "guilds": orEmpty(guilds),
		"resume_gateway_url": "ws://" + s.ln.Addr().String(),
		"application":        map[string]any{"id": b.id, "flags": 0},
	})
	if intents&IntentGuilds != 0 {
		for _, g := range sortedCopy(b.Guilds) {
			name, ok := s.guilds[g]
			if !ok {
				continue
			}
			var chans []map[string]any
			for _, ch := range s.channels {
				if ch.guild == g {
					chans = append(chans, channelJSON(ch))
				}
			}
			s.sendLocked(ss, "GUILD_CREATE", map[string]any{"id": g, "name": name, "unavailable": false, "channels": orEmpty(chans)})
		}
	}
	return 0, ""
}

func (s *Server) resume(c *conn, token, id string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[id]
	if ss != nil && ss.bot.revoked {
		s.mu.Unlock()
		c.closeWith(CloseAuthenticationFailed, "Authentication failed.")
		s.mu.Lock()
		return
	}
	if ss == nil || ss.invalid || ss.bot.Token != trimBot(token) || time.Since(ss.dropped) > s.ResumeWindow && ss.conn == nil {
		c.send(map[string]any{"op": 9, "d": false})
		return
	}
	if old := ss.conn; old != nil && old != c {
		old.ws.Close()
	}
	ss.conn, c.sess = c, ss
	for _, e := range ss.buf {
		if e.seq > seq {
			c.sendRaw(e.data)
		}
	}
	s.sendLocked(ss, "RESUMED", map[string]any{})
}

// sendLocked sends one dispatch on a session, keeping it for replay.
func (s *Server) sendLocked(ss *session, typ string, d any) {
	ss.seq++
	b, err := json.Marshal(map[string]any{"op": 0, "s": ss.seq, "t": typ, "d": d})
	if err != nil {
		panic(err)
	}
	ss.buf = append(ss.buf, sent{ss.seq, b})
	if len(ss.buf) > maxReplay {
		ss.buf = slices.Delete(ss.buf, 0, len(ss.buf)-maxReplay)
	}
	if ss.conn != nil {
		ss.conn.sendRaw(b)
	}
}

// dispatchLocked sends a message event to every session that may see it:
// bots in the guild that asked for guild messages. Content follows the
// Message Content rule per viewer.
func (s *Server) dispatchLocked(guild, typ string, m *Message, raw map[string]any) {
	now := time.Now()
	for id, ss := range s.sessions {
		if ss.conn == nil && now.Sub(ss.dropped) > s.ResumeWindow {
			delete(s.sessions, id)
			continue
		}
		if ss.intents&IntentGuildMessages == 0 || !slices.Contains(ss.bot.Guilds, guild) {
			continue
		}
		d := any(raw)
		if m != nil {
			d = s.messageJSONIntents(m, ss.bot, ss.intents)
		}
		s.sendLocked(ss, typ, d)
	}
}

func trimBot(token string) string {
	if len(token) > 4 && token[:4] == "Bot " {
		return token[4:]
	}
	return token
}
