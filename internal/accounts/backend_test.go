package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// addAlice adds alice@example.com holding stable and returns her
// credentials.
func addAlice(t *testing.T, db *accounts.DB) license.Credentials {
	t.Helper()
	_, token, err := db.Add(t.Context(), "ops", "alice@example.com", []string{"stable"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return license.Credentials{Username: "alice@example.com", Token: token}
}

// runBackend runs be until stop is called or the test ends, once its first
// poll has succeeded.
func runBackend(t *testing.T, be *accounts.Backend) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { be.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	testutil.WaitFor(t, "first poll", 5*time.Second, func() bool { _, ok := be.Version(); return ok })
	return stop
}

// Two replicas' caches on one database: a revocation made through a third
// connection (the CLI's) is seen by both within the poll interval, and
// nothing is asked of the database per cached hit.
func TestRevocationReachesEveryCache(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		admin := openSeeded(t, cfg, accounts.Options{})
		cred := addAlice(t, admin)
		type replica struct {
			be    *accounts.Backend
			cache *license.Cache
			obs   *countingObserver
		}
		var replicas []replica
		for range 2 {
			db := accountstest.Open(t, cfg, accounts.Options{})
			be := db.NewBackend(accounts.BackendOptions{RevocationPoll: 100 * time.Millisecond})
			obs := &countingObserver{}
			cache := license.NewCache(be, license.CacheConfig{TTL: time.Hour, Observer: obs})
			runBackend(t, be)
			replicas = append(replicas, replica{be, cache, obs})
		}
		for _, r := range replicas {
			for range 50 {
				if _, err := r.cache.Lookup(ctx, cred); err != nil {
					t.Fatal(err)
				}
			}
			if r.obs.lookups.Load() != 1 {
				t.Fatalf("%d backend look-ups for 50 logins, want 1", r.obs.lookups.Load())
			}
		}

		if _, err := admin.RevokeToken(ctx, "ops", "alice@example.com", ""); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		for i, r := range replicas {
			testutil.WaitFor(t, fmt.Sprintf("replica %d refuses", i), time.Second, func() bool {
				_, err := r.cache.Lookup(ctx, cred)
				return errors.Is(err, license.ErrBadCredentials)
			})
		}
		if d := time.Since(revoked); d > time.Second {
			t.Errorf("revocation took %v", d)
		} else {
			t.Logf("revocation seen by both replicas after %v", d)
		}
	})
}

// A backend that has not polled, or whose database went away, serves
// nothing from the cache: every login asks the database, and fails closed.
func TestVersionFailsClosed(t *testing.T) {
	t.Parallel()
	pg := accountstest.Start(t)
	cfg := pg.NewDatabase(t)
	ctx := t.Context()
	db := openSeeded(t, cfg, accounts.Options{})
	cred := addAlice(t, db)
	be := db.NewBackend(accounts.BackendOptions{RevocationPoll: 50 * time.Millisecond})
	if _, ok := be.Version(); ok {
		t.Fatal("version usable before the first poll")
	}
	cache := license.NewCache(be, license.CacheConfig{TTL: time.Hour})
	runBackend(t, be)
	if _, err := cache.Lookup(ctx, cred); err != nil {
		t.Fatal(err)
	}

	pg.Stop()
	testutil.WaitFor(t, "cache stops serving", 5*time.Second, func() bool {
		_, err := cache.Lookup(ctx, cred)
		return errors.Is(err, license.ErrUnavailable)
	})
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "logins work again", 10*time.Second, func() bool {
		_, err := cache.Lookup(ctx, cred)
		return err == nil
	})
}

// last_used is written in batches by Run, not per login.
func TestLastUsedBatched(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openSeeded(t, accountstest.SQLite(t), accounts.Options{})
	cred := addAlice(t, db)
	be := db.NewBackend(accounts.BackendOptions{LastUsedFlush: time.Hour})
	for range 10 {
		if _, err := be.Lookup(ctx, cred.Token); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := db.Show(ctx, "alice@example.com")
	if !a.Tokens[0].LastUsed.IsZero() {
		t.Fatal("last_used written per login")
	}
	be.FlushLastUsed(ctx)
	a, _ = db.Show(ctx, "alice@example.com")
	if time.Since(a.Tokens[0].LastUsed) > time.Minute {
		t.Errorf("last_used after flush: %v", a.Tokens[0].LastUsed)
	}
	// Run writes what is left when it stops.
	_, token2, err := db.AddToken(ctx, "ops", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	stop := runBackend(t, be)
	if err := be.Run(ctx); err == nil {
		t.Error("a second Run started")
	}
	if _, err := be.Lookup(ctx, token2); err != nil {
		t.Fatal(err)
	}
	stop()
	a, _ = db.Show(ctx, "alice@example.com")
	if a.Tokens[1].LastUsed.IsZero() {
		t.Error("last_used not written when Run stopped")
	}
}

// Logins keep working, without a wrong answer, while admins change other
// accounts and the same one.
func TestConcurrentLoginsDuringChanges(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ctx := t.Context()
		db := openSeeded(t, cfg, accounts.Options{})
		cred := addAlice(t, db)
		be := db.NewBackend(accounts.BackendOptions{RevocationPoll: 50 * time.Millisecond})
		runBackend(t, be)
		cache := license.NewCache(be, license.CacheConfig{})

		var wg sync.WaitGroup
		var bad atomic.Value
		stopLogins := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stopLogins:
						return
					default:
					}
					lic, err := cache.Lookup(ctx, cred)
					if err != nil {
						bad.Store(err)
						return
					}
					if !lic.Holds("stable") {
						bad.Store(fmt.Errorf("licence without stable: %+v", lic))
						return
					}
				}
			})
		}
		for i := range 15 {
			email := fmt.Sprintf("user%d@example.com", i)
			if _, _, err := db.Add(ctx, "ops", email, []string{"beta"}, time.Time{}); err != nil {
				t.Error(err)
			}
			if err := db.Grant(ctx, "ops", "alice@example.com", []string{fmt.Sprintf("c%d", i)}, accounts.CreateChannels()); err != nil {
				t.Error(err)
			}
			if err := db.Delete(ctx, "ops", email); err != nil {
				t.Error(err)
			}
		}
		close(stopLogins)
		wg.Wait()
		if err := bad.Load(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the last grant", 2*time.Second, func() bool {
			lic, err := cache.Lookup(ctx, cred)
			return err == nil && lic.Holds("c14")
		})
	})
}

type countingObserver struct{ lookups, hits atomic.Int32 }

func (o *countingObserver) LookupDone(string, string, time.Duration) { o.lookups.Add(1) }
func (o *countingObserver) CacheHit(bool)                            { o.hits.Add(1) }
