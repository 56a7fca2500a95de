package discord

import (
	"context"
	"errors"
	"time"

	"github.com/dsftp/dsftp/peers/internal/pace"
)

// postAttempts bounds the prompt retries of a post the server failed (a
// 5xx answer): 1 s, 2 s, 4 s apart, so an advert whose
// creation the server announced but did not store is replaced within
// seconds. Past that, the refresh loop retries on its slower backoff.
const (
	postAttempts   = 4
	postRetryFirst = time.Second
)

// postRetrying is post, tried again promptly while the server fails.
// Every attempt signs a new advert (the next sequence number): one the
// server stored although it answered with an error is then older than
// the next, and deleted as a stale one of ours (receiver.own).
func (d *Discovery) postRetrying(ctx context.Context) error {
	wait := postRetryFirst
	for attempt := 1; ; attempt++ {
		err := d.post(ctx)
		if err == nil || attempt == postAttempts || !serverFailed(err) {
			return err
		}
		d.log.Info("discord: the server failed to store our advert; posting it again", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pace.Jitter(wait, 20)):
		}
		wait *= 2
	}
}

// serverFailed reports whether err is the server's own failure (a 5xx
// answer). A post that got no answer is left to the refresh loop's
// slower backoff: retrying it at once would add load to a server that is
// already slow.
func serverFailed(err error) bool {
	if errors.Is(err, ErrForbidden) || errors.Is(err, ErrNoChannel) || errors.Is(err, ErrBadToken) {
		return false
	}
	status, _ := restCode(err)
	return status >= 500
}
