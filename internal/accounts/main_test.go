package accounts_test

import (
	"os"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }
