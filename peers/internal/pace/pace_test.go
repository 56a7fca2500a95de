package pace

import (
	"testing"
	"time"
)

func TestJitter(t *testing.T) {
	for range 1000 {
		if got := Jitter(10*time.Second, 20); got < 8*time.Second || got > 12*time.Second {
			t.Fatalf("Jitter(10s, 20%%) = %v, want 8s to 12s", got)
		}
	}
	if got := Jitter(0, 20); got != 0 {
		t.Errorf("Jitter(0) = %v", got)
	}
}

func TestLogLimiter(t *testing.T) {
	l := LogLimiter{Every: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow("a", t0); !ok || n != 0 {
		t.Fatalf("first = %v, %d; want true, 0", ok, n)
	}
	for i := 1; i <= 3; i++ {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("event %d within Every was let through", i)
		}
	}
	if ok, _ := l.Allow("b", t0.Add(time.Second)); !ok {
		t.Fatal("another key was held back")
	}
	if ok, n := l.Allow("a", t0.Add(11*time.Second)); !ok || n != 3 {
		t.Fatalf("after Every = %v, %d; want true, 3 held back", ok, n)
	}
}
