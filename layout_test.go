package hlbridge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The package layout is a rule of the project (see the README's
// Development section): the arrows between packages point one way. These
// tests read the import graph of every non-test package with go list and
// fail on an arrow that points the wrong way. Test files may import what
// they need (the end-to-end tests in bridge/e2e import both neighbours).

const module = "github.com/hlbridge/hlbridge"

// pkgInfo is what go list says of one package.
type pkgInfo struct {
	ImportPath string
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test
}

// layoutRule forbids a package (or a tree of them) some imports.
type layoutRule struct {
	why string
	// applies says whether the rule covers the package at path.
	applies func(path string) bool
	// direct checks only the package's own imports; otherwise every
	// package it depends on.
	direct bool
	// forbidden says whether importing dep breaks the rule.
	forbidden func(path, dep string) bool
}

// Helpers that name parts of the graph.
func under(root string) func(string) bool {
	return func(p string) bool { return p == module+"/"+root || strings.HasPrefix(p, module+"/"+root+"/") }
}

func is(name string) func(string) bool {
	return func(p string) bool { return p == module+"/"+name }
}

// testHelper reports whether p is a package for tests only: the doors'
// fakes (wordpresstest, highleveltest), bridgetest, internal/testkit and
// the test-only bridge/e2e.
func testHelper(p string) bool {
	return strings.HasPrefix(p, module+"/") &&
		(strings.HasSuffix(p, "test") || strings.HasSuffix(p, "/testkit") || p == module+"/bridge/e2e")
}

// door reports whether p is one of the doors to an outside system (or a
// package of one), test helpers left out.
func door(p string) bool {
	return (under("highlevel")(p) || under("wordpress")(p)) && !testHelper(p)
}

func thirdParty(prefixes ...string) func(string, string) bool {
	return func(_, dep string) bool {
		for _, pre := range prefixes {
			if dep == pre || strings.HasPrefix(dep, pre+"/") {
				return true
			}
		}
		return false
	}
}

func anyOf(fs ...func(string, string) bool) func(string, string) bool {
	return func(p, dep string) bool {
		for _, f := range fs {
			if f(p, dep) {
				return true
			}
		}
		return false
	}
}

func own(names ...string) func(string, string) bool {
	return func(_, dep string) bool {
		for _, n := range names {
			if under(n)(dep) {
				return true
			}
		}
		return false
	}
}

var (
	river    = thirdParty("github.com/riverqueue")
	sqlDrv   = thirdParty("modernc.org/sqlite", "github.com/jackc/pgx", "github.com/lib/pq")
	sqlPkg   = thirdParty("database/sql")
	gin      = thirdParty("github.com/gin-gonic")
	prom     = thirdParty("github.com/prometheus")
	helpers  = func(_, dep string) bool { return testHelper(dep) }
	stdlib   = func(dep string) bool { return !strings.Contains(strings.Split(dep, "/")[0], ".") }
	notStdOr = func(allowed func(string) bool) func(string, string) bool {
		return func(_, dep string) bool { return !stdlib(dep) && !allowed(dep) }
	}
)

// layoutRules are the arrows. Each names why, for the failure message.
var layoutRules = []layoutRule{
	{why: "a door knows nothing of the other door, of bridge or of any other package of the project",
		applies: door,
		forbidden: func(p, dep string) bool {
			if !strings.HasPrefix(dep, module+"/") {
				return false
			}
			root, _, _ := strings.Cut(strings.TrimPrefix(p, module+"/"), "/")
			return !under(root)(dep) || testHelper(dep)
		}},
	{why: "the rules (bridge) import only the standard library and the doors",
		applies: is("bridge"), direct: true,
		forbidden: notStdOr(door)},
	{why: "the rules (bridge) depend on no queue, database, HTTP framework or metrics library, nor on their neighbours",
		applies:   is("bridge"),
		forbidden: anyOf(river, sqlDrv, sqlPkg, gin, prom, own("bridge/queue", "bridge/httpapi", "bridge/metrics"))},
	{why: "the durable delivery (queue) never imports the HTTP surface or gin",
		applies:   under("bridge/queue"),
		forbidden: anyOf(gin, own("bridge/httpapi"))},
	{why: "the HTTP surface (httpapi) never imports the queue, River or an SQL driver",
		applies:   under("bridge/httpapi"),
		forbidden: anyOf(river, sqlDrv, own("bridge/queue"))},
	{why: "the HTTP surface (httpapi) runs no SQL itself",
		applies: under("bridge/httpapi"), direct: true,
		forbidden: sqlPkg},
	{why: "metrics are shared by queue and httpapi, so they import neither, nor gin, River or SQL",
		applies:   under("bridge/metrics"),
		forbidden: anyOf(gin, river, sqlDrv, own("bridge/queue", "bridge/httpapi"))},
	{why: "the shared test helpers (internal/testkit) import only the standard library",
		applies:   is("internal/testkit"),
		forbidden: notStdOr(func(string) bool { return false })},
	{why: "the product never depends on a test helper",
		applies: func(p string) bool {
			return strings.HasPrefix(p, module+"/") && !testHelper(p) && p != module+"/cmd/hlbench"
		},
		forbidden: helpers},
}

// checkLayout returns one line per broken arrow.
func checkLayout(pkgs []pkgInfo, rules []layoutRule) []string {
	var broken []string
	for _, p := range pkgs {
		for _, r := range rules {
			if !r.applies(p.ImportPath) {
				continue
			}
			deps := p.Deps
			if r.direct {
				deps = p.Imports
			}
			for _, d := range deps {
				if r.forbidden(p.ImportPath, d) {
					broken = append(broken, p.ImportPath+" imports "+d+": "+r.why)
				}
			}
		}
	}
	return broken
}

// listPackages runs go list over the module's packages.
func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goCmd, "list", "-e", "-json=ImportPath,Imports,Deps", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestLayoutArrowsPointOneWay(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)
	// The rules must have something to check: a moved package would make
	// them pass vacuously.
	for _, want := range []string{"bridge", "bridge/queue", "bridge/httpapi", "bridge/metrics", "highlevel", "wordpress", "internal/testkit"} {
		if !slices.ContainsFunc(pkgs, func(p pkgInfo) bool { return p.ImportPath == module+"/"+want }) {
			t.Errorf("package %s not found: update layout_test.go with the layout", want)
		}
	}
	for _, b := range checkLayout(pkgs, layoutRules) {
		t.Error(b)
	}
}

// The rules catch each kind of wrong arrow, on a made-up graph.
func TestLayoutRulesCatchWrongArrows(t *testing.T) {
	t.Parallel()
	m := func(s string) string { return module + "/" + s }
	for _, tc := range []struct {
		pkg      pkgInfo
		violated bool
	}{
		{pkgInfo{ImportPath: m("bridge"), Imports: []string{"context", m("wordpress")}, Deps: []string{"context", m("wordpress"), "github.com/go-resty/resty/v2"}}, false},
		{pkgInfo{ImportPath: m("bridge"), Imports: []string{"database/sql"}, Deps: []string{"database/sql"}}, true},
		{pkgInfo{ImportPath: m("bridge"), Imports: []string{"github.com/go-resty/resty/v2"}, Deps: []string{"github.com/go-resty/resty/v2"}}, true},
		{pkgInfo{ImportPath: m("bridge"), Imports: []string{m("bridge/metrics")}, Deps: []string{m("bridge/metrics"), "github.com/prometheus/client_golang/prometheus"}}, true},
		{pkgInfo{ImportPath: m("bridge/queue"), Deps: []string{m("bridge"), "github.com/riverqueue/river", "database/sql"}}, false},
		{pkgInfo{ImportPath: m("bridge/queue"), Deps: []string{m("bridge/httpapi")}}, true},
		{pkgInfo{ImportPath: m("bridge/queue"), Deps: []string{"github.com/gin-gonic/gin"}}, true},
		{pkgInfo{ImportPath: m("bridge/httpapi"), Imports: []string{"github.com/gin-gonic/gin"}, Deps: []string{m("bridge"), "github.com/gin-gonic/gin", "database/sql"}}, false},
		{pkgInfo{ImportPath: m("bridge/httpapi"), Deps: []string{m("bridge/queue")}}, true},
		{pkgInfo{ImportPath: m("bridge/httpapi"), Deps: []string{"github.com/riverqueue/river/rivertype"}}, true},
		{pkgInfo{ImportPath: m("bridge/httpapi"), Imports: []string{"database/sql"}, Deps: []string{"database/sql"}}, true},
		{pkgInfo{ImportPath: m("bridge/metrics"), Deps: []string{m("bridge/queue")}}, true},
		{pkgInfo{ImportPath: m("highlevel"), Deps: []string{m("wordpress")}}, true},
		{pkgInfo{ImportPath: m("wordpress"), Deps: []string{m("bridge")}}, true},
		{pkgInfo{ImportPath: m("wordpress"), Deps: []string{m("internal/testkit")}}, true},
		{pkgInfo{ImportPath: m("highlevel/highleveltest"), Deps: []string{m("highlevel"), m("internal/testkit")}}, false},
		{pkgInfo{ImportPath: m("internal/testkit"), Deps: []string{m("bridge")}}, true},
		{pkgInfo{ImportPath: m("cmd/hlbridge"), Deps: []string{m("bridge/bridgetest")}}, true},
		{pkgInfo{ImportPath: m("cmd/hlbench"), Deps: []string{m("bridge/bridgetest"), m("bridge/queue"), m("bridge/httpapi")}}, false},
	} {
		broken := checkLayout([]pkgInfo{tc.pkg}, layoutRules)
		if (len(broken) > 0) != tc.violated {
			t.Errorf("%s importing %v: broken = %q, want a violation: %v", tc.pkg.ImportPath, tc.pkg.Deps, broken, tc.violated)
		}
	}
}
