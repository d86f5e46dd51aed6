// The new-user scenario of the ingest issue, run with the official Go SDK (Debian's
// golang-github-getsentry-sentry-go-dev, built in GOPATH mode by the test).
//
// Captures the same error from one line twice with different values, a recovered panic and
// a message, with tags and a user on the scope. Prints each event id, one per line.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/getsentry/sentry-go"
)

func findOrder(id int) error {
	return fmt.Errorf("order %d not found", id)
}

func lookupOrder(id int) *sentry.EventID {
	return sentry.CaptureException(findOrder(id))
}

func applyDiscount(total, parts int) int {
	return total / parts
}

func checkout(parts int) (id *sentry.EventID) {
	defer func() {
		if recovered := recover(); recovered != nil {
			id = sentry.CurrentHub().Recover(recovered)
		}
	}()
	applyDiscount(100, parts)
	return nil
}

func main() {
	err := sentry.Init(sentry.ClientOptions{
		Dsn:         os.Getenv("FAULTLINE_DSN"),
		Release:     "checkout@1.4.2",
		Environment: "staging",
		ServerName:  "checkout-host-1",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sentry.Init:", err)
		os.Exit(1)
	}
	sentry.ConfigureScope(func(scope *sentry.Scope) {
		scope.SetTag("component", "payments")
		scope.SetUser(sentry.User{ID: "user-42", Email: "buyer@example.com"})
	})
	ids := []*sentry.EventID{
		lookupOrder(1001),
		lookupOrder(2002),
		checkout(0),
		sentry.CaptureMessage("Payment declined for order 1001"),
	}
	if !sentry.Flush(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "events were not all sent")
		os.Exit(1)
	}
	for _, id := range ids {
		if id == nil {
			fmt.Fprintln(os.Stderr, "an event was not captured")
			os.Exit(1)
		}
		fmt.Println(*id)
	}
}
