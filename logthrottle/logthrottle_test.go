package logthrottle

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	th := New(time.Hour)
	if !th.Allow("a") || th.Allow("a") {
		t.Fatal("the first message of a key must pass, the second within the interval not")
	}
	if !th.Allow("b") {
		t.Fatal("keys are throttled apart")
	}
	th.Forget("a")
	if !th.Allow("a") {
		t.Fatal("a forgotten key starts again")
	}
	if fast := New(0); !fast.Allow("a") || !fast.Allow("a") {
		t.Fatal("a zero interval lets everything through")
	}
}
