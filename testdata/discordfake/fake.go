// Package discordfake is a fake Discord for tests: real HTTP and a real
// websocket gateway on 127.0.0.1, speaking the subset of Discord's API v9
// that discordgo and dsftp use, so the unmodified discordgo can talk to it.
//
// It models what matters to discovery: bots with tokens, guilds, text
// channels, messages with snowflake IDs and paged history, the gateway
// handshake (HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeats, RESUME with
// replay, op 7 and op 9), message dispatches, author-only edit and delete,
// the Message Content intent (without it a bot sees other bots' messages
// with empty content), the close codes 4004 and 4014, and 429 answers.
//
// Tests set the hook fields before Start and use the methods to inject
// messages and faults. It is test-only code: the dsftp binary never
// imports it.
package discordfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Discord's gateway intents and close codes that the fake honours.
const (
	IntentGuilds         = 1 << 0
	IntentGuildMessages  = 1 << 9
	IntentMessageContent = 1 << 15

	CloseAuthenticationFailed = 4004
	CloseDisallowedIntents    = 4014
)

// discordEpoch is the start of Discord snowflake time, in Unix ms.
const discordEpoch = 1420070400000

// Request describes one REST call, for the hooks.
type Request struct {
	BotID  string // "" when the token was not recognised
	Method string
	Path   string // without the /api/v9 prefix, e.g. "/channels/1/messages"
}

// IsWrite reports whether the request changes messages.
func (r Request) IsWrite() bool {
	return r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodDelete
}

// Bot is a bot account. Fill it in and pass it to AddBot.
type Bot struct {
	// Token authenticates the bot ("Bot " prefix optional on the wire).
	Token string
	// Name is the bot's user name.
	Name string
	// MessageContent says whether the Message Content intent is enabled
	// for the bot's application in the developer portal.
	MessageContent bool
	// Guilds the bot is a member of.
	Guilds []string
	// NoPost lists channel IDs the bot may read but not post in.
	NoPost []string

	id      string
	revoked bool
}

// Message is one message as stored by the fake.
type Message struct {
	ID, ChannelID, GuildID string
	AuthorID, AuthorName   string
	Content                string
	Time                   time.Time
	Edited                 time.Time
}

// Server is the fake. The exported fields are hooks; set them before
// Start.
type Server struct {
	// HeartbeatInterval is announced in HELLO (default 41.25 s).
	HeartbeatInterval time.Duration
	// ResumeWindow is how long a dropped gateway session can be resumed
	// (default 2 min).
	ResumeWindow time.Duration
	// RateLimit, when set, is asked about every REST request; a positive
	// duration answers 429 with that retry_after instead.
	RateLimit func(Request) time.Duration
	// OnRequest, when set, sees every REST request that was answered
	// normally (after authentication and rate limiting).
	OnRequest func(Request)
	// Identify, when set, is asked about every gateway IDENTIFY of a known
	// bot; a non-zero result closes the connection with that code (e.g.
	// 4004 for a token revoked after login).
	Identify func(botID string, intents int) int
	// Answer, when set, is asked about every REST request after
	// authentication; ok answers it with status and the raw JSON body
	// instead (an off-spec server: "null", an object without its id).
	Answer func(Request) (status int, body string, ok bool)
	// FailStore, when set, is asked about every message POST that would
	// succeed; a non-zero status makes the fake dispatch MESSAGE_CREATE
	// for the message, not store it, and answer with that status, as a
	// server whose database write failed after the event went out.
	FailStore func(Request) int

	gatewayDown atomic.Bool
	noAcks      atomic.Bool
	connects    atomic.Int64
	refused     atomic.Int64 // gateway connections refused while down

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	lastID   int64
	bots     map[string]*Bot // by token
	guilds   map[string]string
	channels map[string]*channel
	messages map[string][]*Message // by channel, ascending ID
	sessions map[string]*session
	conns    map[*websocket.Conn]*conn
	writes   map[string]int // REST writes by bot ID
}

type channel struct{ id, guild, name string }

// New returns a fake with no guilds, channels or bots.
func New() *Server {
	return &Server{
		bots:     map[string]*Bot{},
		guilds:   map[string]string{},
		channels: map[string]*channel{},
		messages: map[string][]*Message{},
		sessions: map[string]*session{},
		conns:    map[*websocket.Conn]*conn{},
		writes:   map[string]int{},
	}
}

// Start listens on addr ("" means 127.0.0.1:0) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fake discord: listen: %w", err)
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = 41250 * time.Millisecond
	}
	if s.ResumeWindow == 0 {
		s.ResumeWindow = 2 * time.Minute
	}
	s.mu.Lock()
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Unlock()
	go s.srv.Serve(ln)
	return nil
}

// URL is the base to give dsftp's --discord-api, e.g. http://127.0.0.1:4321.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	var cs []*conn
	for _, c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.ws.Close()
	}
	if srv != nil {
		srv.Close()
	}
}

// newIDLocked returns a fresh snowflake for the current time.
func (s *Server) newIDLocked() string {
	id := (time.Now().UnixMilli() - discordEpoch) << 22
	if id <= s.lastID {
		id = s.lastID + 1
	}
	s.lastID = id
	return strconv.FormatInt(id, 10)
}

// AddGuild creates a guild and returns its ID.
func (s *Server) AddGuild(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newIDLocked()
	s.guilds[id] = name
	return id
}

// AddChannel creates a text channel in guild and returns its ID.
func (s *Server) AddChannel(guild, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newIDLocked()
	s.channels[id] = &channel{id: id, guild: guild, name: name}
	return id
}

// AddBot registers a bot and returns its user ID. Several calls with the
// same token return the same bot.
func (s *Server) AddBot(b Bot) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.bots[b.Token]; ok {
		return old.id
	}
	b.id = s.newIDLocked()
	s.bots[b.Token] = &b
	return b.id
}

// Post adds a message as the bot with token, as if sent through REST
// (it counts as a write), and returns its ID.
func (s *Server) Post(token, channelID, content string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bots[token]
	if !ok {
		return "", errors.New("fake discord: unknown token")
	}
	m, status, _ := s.postLocked(b, channelID, content)
	if m == nil {
		return "", fmt.Errorf("fake discord: post: HTTP %d", status)
	}
	return m.ID, nil
}

// Messages returns a copy of the channel's messages, oldest first, with
// their full content.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages[channelID]))
	for _, m := range s.messages[channelID] {
		out = append(out, *m)
	}
	return out
}

// Writes returns how many REST writes (POST, PATCH, DELETE on messages)
// each bot ID has made.
func (s *Server) Writes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.writes {
		out[k] = v
	}
	return out
}

// DropGateways closes every gateway connection abruptly, without a close
// frame, like a network failure. Sessions stay resumable.
func (s *Server) DropGateways() {
	for _, c := range s.liveConns() {
		c.ws.Close()
	}
}

// Reconnect asks every gateway client to reconnect (op 7).
func (s *Server) Reconnect() {
	for _, c := range s.liveConns() {
		c.send(map[string]any{"op": 7, "d": nil})
	}
}

// InvalidateSessions forgets every gateway session and sends op 9, so
// clients must identify again and cannot replay what they missed.
func (s *Server) InvalidateSessions() {
	s.mu.Lock()
	for id, ss := range s.sessions {
		ss.invalid = true
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	for _, c := range s.liveConns() {
		c.send(map[string]any{"op": 9, "d": false})
	}
}

// SuppressHeartbeatAcks stops (true) or resumes (false) answering
// heartbeats, as a half-dead connection does; clients should reconnect.
func (s *Server) SuppressHeartbeatAcks(on bool) { s.noAcks.Store(on) }

// Connects returns how many gateway websocket connections were accepted.
func (s *Server) Connects() int64 { return s.connects.Load() }

// Refused is how many gateway connections were refused while the gateway
// was down (SetGatewayDown).
func (s *Server) Refused() int64 { return s.refused.Load() }

// RevokeToken makes the bot's token invalid, as resetting it in the
// developer portal does: REST answers 401 and the gateway closes with 4004.
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bots[token]; ok {
		b.revoked = true
	}
}

// SetGatewayDown makes the gateway unreachable (true): open connections
// are dropped, sessions forgotten and new connections refused with 503,
// so clients miss everything until it is back up (false).
func (s *Server) SetGatewayDown(down bool) {
	s.gatewayDown.Store(down)
	if down {
		s.mu.Lock()
		clear(s.sessions)
		s.mu.Unlock()
		s.DropGateways()
	}
}

// Delete removes a message as a moderator would (not counted as a bot
// write) and dispatches MESSAGE_DELETE.
func (s *Server) Delete(channelID, messageID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channelID]
	if !ok {
		return false
	}
	msgs := s.messages[channelID]
	i := slices.IndexFunc(msgs, func(m *Message) bool { return m.ID == messageID })
	if i < 0 {
		return false
	}
	s.messages[channelID] = slices.Delete(msgs, i, i+1)
	s.dispatchLocked(c.guild, "MESSAGE_DELETE", nil, map[string]any{"id": messageID, "channel_id": channelID, "guild_id": c.guild})
	return true
}

// Forget removes a message without dispatching MESSAGE_DELETE, as a
// deletion whose event was lost: only a history read shows it.
func (s *Server) Forget(channelID, messageID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := s.messages[channelID]
	i := slices.IndexFunc(msgs, func(m *Message) bool { return m.ID == messageID })
	if i < 0 {
		return false
	}
	s.messages[channelID] = slices.Delete(msgs, i, i+1)
	return true
}

// Dispatch sends a raw gateway event of type typ (e.g. MESSAGE_CREATE)
// with payload d to every session in guild; a nil d is sent as null.
func (s *Server) Dispatch(guild, typ string, d map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchLocked(guild, typ, nil, d)
}

// GatewayConns returns how many gateway connections are open.
func (s *Server) GatewayConns() int { return len(s.liveConns()) }

func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for _, c := range s.conns {
		out = append(out, c)
	}
	return out
}

// ServeHTTP routes REST calls under /api/v9 and gateway upgrades elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		if s.gatewayDown.Load() {
			s.refused.Add(1)
			writeError(w, http.StatusServiceUnavailable, 0, "gateway down")
			return
		}
		s.serveGateway(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v9")
	if !ok {
		writeError(w, http.StatusNotFound, 0, "404: Not Found")
		return
	}
	if path == "/gateway" || path == "/gateway/bot" {
		writeJSON(w, http.StatusOK, map[string]any{
			"url": "ws://" + s.ln.Addr().String(), "shards": 1,
			"session_start_limit": map[string]int{"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
		})
		return
	}
	s.mu.Lock()
	b := s.bots[strings.TrimPrefix(r.Header.Get("Authorization"), "Bot ")]
	if b != nil && b.revoked {
		b = nil
	}
	s.mu.Unlock()
	req := Request{Method: r.Method, Path: path}
	if b == nil {
		writeError(w, http.StatusUnauthorized, 0, "401: Unauthorized")
		return
	}
	req.BotID = b.id
	if s.RateLimit != nil {
		if d := s.RateLimit(req); d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds()+0.999)))
			writeJSON(w, http.StatusTooManyRequests, map[string]any{
				"message": "You are being rate limited.", "retry_after": d.Seconds(), "global": false,
			})
			return
		}
	}
	if s.Answer != nil {
		if status, body, ok := s.Answer(req); ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return
		}
	}
	if s.OnRequest != nil {
		s.OnRequest(req)
	}
	s.serveREST(w, r, b, path)
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request, b *Bot, path string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == "GET" && path == "/users/@me":
		writeJSON(w, 200, userJSON(b))
	case r.Method == "GET" && path == "/users/@me/guilds":
		var gs []map[string]any
		for _, g := range sortedCopy(b.Guilds) {
			if name, ok := s.guilds[g]; ok {
				gs = append(gs, map[string]any{"id": g, "name": name, "permissions": "68608"})
			}
		}
		writeJSON(w, 200, orEmpty(gs))
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "guilds" && parts[2] == "channels":
		if _, ok := s.guilds[parts[1]]; !ok {
			writeError(w, 404, 10004, "Unknown Guild")
			return
		}
		if !slices.Contains(b.Guilds, parts[1]) {
			writeError(w, 403, 50001, "Missing Access")
			return
		}
		var cs []map[string]any
		for _, c := range s.channels {
			if c.guild == parts[1] {
				cs = append(cs, channelJSON(c))
			}
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i]["id"].(string) < cs[j]["id"].(string) })
		writeJSON(w, 200, orEmpty(cs))
	case len(parts) >= 2 && parts[0] == "channels":
		c, ok := s.channels[parts[1]]
		if !ok {
			writeError(w, 404, 10003, "Unknown Channel")
			return
		}
		if !slices.Contains(b.Guilds, c.guild) {
			writeError(w, 403, 50001, "Missing Access")
			return
		}
		s.serveChannel(w, r, b, c, parts[2:])
	default:
		writeError(w, 404, 0, "404: Not Found")
	}
}

func (s *Server) serveChannel(w http.ResponseWriter, r *http.Request, b *Bot, c *channel, rest []string) {
	switch {
	case len(rest) == 0 && r.Method == "GET":
		writeJSON(w, 200, channelJSON(c))
	case len(rest) == 1 && rest[0] == "messages" && r.Method == "GET":
		s.listMessages(w, r.URL.Query(), b, c)
	case len(rest) == 1 && rest[0] == "messages" && r.Method == "POST":
		var body struct {
			Content string `json:"content"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, 400, 50109, "The request body contains invalid JSON.")
			return
		}
		if s.FailStore != nil {
			if status := s.FailStore(Request{BotID: b.id, Method: r.Method, Path: "/channels/" + c.id + "/messages"}); status != 0 {
				s.ghostLocked(b, c, body.Content)
				writeError(w, status, 0, http.StatusText(status))
				return
			}
		}
		m, status, code := s.postLocked(b, c.id, body.Content)
		if m == nil {
			writeError(w, status, code, http.StatusText(status))
			return
		}
		writeJSON(w, 200, s.messageJSON(m, b))
	case len(rest) == 2 && rest[0] == "messages" && (r.Method == "PATCH" || r.Method == "DELETE"):
		msgs := s.messages[c.id]
		i := slices.IndexFunc(msgs, func(m *Message) bool { return m.ID == rest[1] })
		if i < 0 {
			writeError(w, 404, 10008, "Unknown Message")
			return
		}
		m := msgs[i]
		if m.AuthorID != b.id {
			// Bots have no Manage Messages here: only authors may change.
			writeError(w, 403, 50013, "Missing Permissions")
			return
		}
		s.writes[b.id]++
		if r.Method == "DELETE" {
			s.messages[c.id] = slices.Delete(msgs, i, i+1)
			s.dispatchLocked(c.guild, "MESSAGE_DELETE", nil, map[string]any{"id": m.ID, "channel_id": c.id, "guild_id": c.guild})
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var body struct {
			Content string `json:"content"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len([]rune(body.Content)) > 2000 {
			writeError(w, 400, 50035, "Invalid Form Body")
			return
		}
		m.Content, m.Edited = body.Content, time.Now()
		s.dispatchLocked(c.guild, "MESSAGE_UPDATE", m, nil)
		writeJSON(w, 200, s.messageJSON(m, b))
	default:
		writeError(w, 405, 0, "405: Method Not Allowed")
	}
}

// postLocked creates a message; on failure it returns nil, the HTTP status
// and Discord's JSON error code.
func (s *Server) postLocked(b *Bot, channelID, content string) (*Message, int, int) {
	c, ok := s.channels[channelID]
	if !ok {
		return nil, 404, 10003
	}
	if !slices.Contains(b.Guilds, c.guild) {
		return nil, 403, 50001
	}
	if slices.Contains(b.NoPost, channelID) {
		return nil, 403, 50013
	}
	if content == "" {
		return nil, 400, 50006
	}
	if len([]rune(content)) > 2000 {
		return nil, 400, 50035
	}
	s.writes[b.id]++
	m := &Message{ID: s.newIDLocked(), ChannelID: c.id, GuildID: c.guild, AuthorID: b.id, AuthorName: b.Name, Content: content, Time: time.Now()}
	s.messages[c.id] = append(s.messages[c.id], m)
	s.dispatchLocked(c.guild, "MESSAGE_CREATE", m, nil)
	return m, 200, 0
}

// ghostLocked dispatches the creation of a message that is then not
// stored (see FailStore).
func (s *Server) ghostLocked(b *Bot, c *channel, content string) {
	m := &Message{ID: s.newIDLocked(), ChannelID: c.id, GuildID: c.guild, AuthorID: b.id, AuthorName: b.Name, Content: content, Time: time.Now()}
	s.dispatchLocked(c.guild, "MESSAGE_CREATE", m, nil)
}

// listMessages pages like Discord: newest first, at most limit (default
// 50, max 100), before/after by snowflake.
func (s *Server) listMessages(w http.ResponseWriter, q url.Values, b *Bot, c *channel) {
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, 400, 50035, "Invalid Form Body")
			return
		}
		limit = n
	}
	msgs := s.messages[c.id]
	var sel []*Message
	switch {
	case q.Get("after") != "":
		after := snowflake(q.Get("after"))
		for _, m := range msgs {
			if snowflake(m.ID) > after && len(sel) < limit {
				sel = append(sel, m)
			}
		}
	default:
		before := int64(1<<63 - 1)
		if v := q.Get("before"); v != "" {
			before = snowflake(v)
		}
		for i := len(msgs) - 1; i >= 0 && len(sel) < limit; i-- {
			if snowflake(msgs[i].ID) < before {
				sel = append(sel, msgs[i])
			}
		}
		slices.Reverse(sel)
	}
	out := make([]map[string]any, 0, len(sel))
	for i := len(sel) - 1; i >= 0; i-- {
		out = append(out, s.messageJSON(sel[i], b))
	}
	writeJSON(w, 200, out)
}

func snowflake(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// canSeeContent models the Message Content intent: a bot sees the content
// of its own messages, and of others' only with the intent enabled and
// requested.
func canSeeContent(viewer *Bot, intents int, m *Message) bool {
	return m.AuthorID == viewer.id || (viewer.MessageContent && intents&IntentMessageContent != 0)
}

func (s *Server) messageJSON(m *Message, viewer *Bot) map[string]any {
	return s.messageJSONIntents(m, viewer, IntentMessageContent)
}

func (s *Server) messageJSONIntents(m *Message, viewer *Bot, intents int) map[string]any {
	content := ""
	if canSeeContent(viewer, intents, m) {
		content = m.Content
	}
	j := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "guild_id": m.GuildID, "type": 0,
		"content":   content,
		"timestamp": m.Time.UTC().Format(time.RFC3339Nano),
		"author":    map[string]any{"id": m.AuthorID, "username": m.AuthorName, "bot": true, "discriminator": "0"},
	}
	if !m.Edited.IsZero() {
		j["edited_timestamp"] = m.Edited.UTC().Format(time.RFC3339Nano)
	}
	return j
}

func userJSON(b *Bot) map[string]any {
	return map[string]any{"id": b.id, "username": b.Name, "bot": true, "discriminator": "0"}
}

func channelJSON(c *channel) map[string]any {
	return map[string]any{"id": c.id, "guild_id": c.guild, "name": c.name, "type": 0}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func orEmpty(v []map[string]any) []map[string]any {
	if v == nil {
		return []map[string]any{}
	}
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "code": code})
}
