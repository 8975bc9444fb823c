package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/cachetlab/cachet"
)

// Auth turns on API keys: every route but /healthz and /readyz needs one, each key's requests are rate
// limited, and what a tenant holds is bounded by its key's limits.
type Auth struct {
	Keys cachet.Keys
	// Defaults are the limits of keys that set none.
	Defaults cachet.KeyLimits
}

// publicRoutes answer without a key: probes must work before anyone has one.
var publicRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.json": true}

// adminRoutes need an admin key.
var adminRoutes = map[string]bool{"/metrics": true}

type limitsKey struct{}

// limiters are the token buckets of the keys seen, by key id and limits (a changed limit is a new bucket).
type limiters struct {
	mu sync.Mutex
	by map[string]*rate.Limiter
}

func (l *limiters) get(id string, lim cachet.KeyLimits) *rate.Limiter {
	key := id + "/" + strconv.FormatFloat(lim.RequestsPerSecond, 'g', -1, 64) + "/" + strconv.Itoa(lim.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string]*rate.Limiter{}
	}
	r, ok := l.by[key]
	if !ok {
		r = rate.NewLimiter(rate.Limit(lim.RequestsPerSecond), max(1, lim.Burst))
		l.by[key] = r
	}
	return r
}

// authenticate reads the request's key, puts its principal and limits into the request's context, and
// applies the key's rate limit. Without Auth every request is the server's own (loopback development).
func (s *Server) authenticate(c *gin.Context) {
	route := c.FullPath()
	if s.opts.Auth == nil || publicRoutes[route] || slices.Contains(consoleRoutes, route) {
		c.Next()
		return
	}
	secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="cachet"`)
		writeError(c, cachet.Errorf(cachet.CodeUnauthenticated, "send an API key as Authorization: Bearer <key>; an operator makes one with `cachet keys create --tenant NAME`"))
		return
	}
	key, err := s.opts.Auth.Keys.Authenticate(c.Request.Context(), strings.TrimSpace(secret))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="cachet", error="invalid_token"`)
		writeError(c, err)
		return
	}
	if adminRoutes[route] && !key.Admin {
		writeError(c, cachet.Errorf(cachet.CodePermissionDenied, "%s needs an admin key", route))
		return
	}
	lim := key.Limits.Or(s.opts.Auth.Defaults)
	if lim.RequestsPerSecond > 0 {
		if l := s.limiters.get(key.ID, lim); !l.Allow() {
			wait := (1 - l.Tokens()) / lim.RequestsPerSecond // seconds until the next token
			c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait)))))
			writeError(c, cachet.Errorf(cachet.CodeResourceExhausted, "this key may send %g requests a second (burst %d); retry after the Retry-After seconds", lim.RequestsPerSecond, lim.Burst))
			return
		}
	}
	ctx := cachet.WithPrincipal(c.Request.Context(), cachet.Principal{Tenant: key.Tenant, Admin: key.Admin, KeyID: key.ID})
	c.Request = c.Request.WithContext(context.WithValue(ctx, limitsKey{}, lim))
	c.Next()
}

// checkQuota refuses a request that would take the tenant past its key's limit on any of what (jobs,
// subjects, collections, bytes stored), from one reading of the tenant's usage; without keys there are no
// quotas.
func (s *Server) checkQuota(c *gin.Context, what ...string) error {
	lim, ok := c.Request.Context().Value(limitsKey{}).(cachet.KeyLimits)
	if !ok {
		return nil
	}
	limits := map[string]int64{"jobs": int64(lim.Jobs), "subjects": int64(lim.Subjects), "collections": int64(lim.Collections), "bytes": lim.StoredBytes}
	if !slices.ContainsFunc(what, func(w string) bool { return limits[w] > 0 }) {
		return nil
	}
	u, err := s.opts.Auth.Keys.Usage(c.Request.Context())
	if err != nil {
		return err
	}
	held := map[string]int64{"jobs": int64(u.Jobs), "subjects": int64(u.Subjects), "collections": int64(u.Collections), "bytes": u.StoredBytes}
	hints := map[string]string{"jobs": "wait for some to finish", "subjects": "delete some", "collections": "delete some", "bytes": "delete subjects"}
	for _, w := range what {
		if limit, have := limits[w], held[w]; limit > 0 && have >= limit {
			p, _ := cachet.PrincipalFrom(c.Request.Context())
			return cachet.Errorf(cachet.CodeQuotaExceeded, "tenant %s holds %d %s, the most its key allows (%d); %s, or ask an operator to raise the key's limit", p.Tenant, have, w, limit, hints[w])
		}
	}
	return nil
}

// validRequestID says whether an incoming X-Request-ID may be used as it is (1–128 of A–Z a–z 0–9 . _ -);
// others are replaced, so a log line cannot be forged through it.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

type requestIDKey struct{}

// requestID takes the client's X-Request-ID (or makes one), answers it, and puts it into the request's
// context for every log line the request writes.
func requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	c.Header("X-Request-ID", id)
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
	c.Next()
}

// LogHandler adds the request id and the tenant of a log call's context to its line.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	if p, ok := cachet.PrincipalFrom(ctx); ok {
		r.AddAttrs(slog.String("tenant", p.Tenant))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}
func (h logHandler) WithGroup(g string) slog.Handler { return logHandler{h.Handler.WithGroup(g)} }

// cors answers browsers from the allowed origins (none by default: no cross-origin access).
func cors(allowed []string) gin.HandlerFunc {
	allow := map[string]bool{}
	for _, o := range allowed {
		allow[strings.TrimRight(o, "/")] = true
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || !(allow[origin] || allow["*"]) {
			if c.Request.Method == http.MethodOptions && origin != "" {
				c.AbortWithStatus(http.StatusForbidden)
				return
			}
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Location, Retry-After, X-Request-ID")
		if c.Request.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, X-Request-ID")
			h.Set("Access-Control-Max-Age", strconv.Itoa(int((10 * time.Minute).Seconds())))
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}
