package release

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/package-url/packageurl-go"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	spdxjson "github.com/spdx/tools-golang/json"
)

// SBOMMediaType is the media type of the SBOM file and the artifact type
// of the referrer that carries it.
const SBOMMediaType = "application/spdx+json"

// Binary is one built binary of one platform, with the build record Go
// embedded in it (module, dependencies, toolchain, build flags).
type Binary struct {
	Name     string
	Platform v1.Platform
	Path     string
	SHA256   string // hex
	Info     *debug.BuildInfo
}

// readBinary reads what the SBOM says about a binary: its hash and its
// embedded build information. A file without build information is not a
// Go binary (or was stripped of it) and cannot be described.
func readBinary(name string, p v1.Platform, file string) (Binary, error) {
	f, err := os.Open(file)
	if err != nil {
		return Binary{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Binary{}, fmt.Errorf("%s: %w", file, err)
	}
	bi, err := buildinfo.Read(f)
	if err != nil {
		return Binary{}, fmt.Errorf("%s: no Go build information: %w", file, err)
	}
	return Binary{Name: name, Platform: p, Path: file, SHA256: hex.EncodeToString(h.Sum(nil)), Info: bi}, nil
}

// SBOMInput is what one image's SBOM describes.
type SBOMInput struct {
	Image    Image
	Version  string
	Repo     string  // registry/repository, without tag
	Digest   v1.Hash // the image index's
	Binaries []Binary
	Created  time.Time
}

// SBOM is the SPDX 2.3 document of one image index: the image, each binary
// of each platform (with its SHA-256 and build settings), the Go standard
// library and every module the binaries link, with versions and package
// URLs, all read from the build information Go embeds in the binaries, so
// that it lists exactly what was compiled in (not what go.mod requires).
func SBOM(in SBOMInput) (*spdx.Document, error) {
	imageID := common.ElementID("Image-" + spdxID(in.Image.Name))
	imagePURL := packageurl.NewPackageURL("oci", "", in.Image.Name, in.Digest.String(),
		packageurl.QualifiersFromMap(map[string]string{"repository_url": in.Repo, "tag": in.Version}), "").ToString()
	doc := &spdx.Document{
		SPDXVersion:    spdx.Version,
		DataLicense:    spdx.DataLicense,
		SPDXIdentifier: "DOCUMENT",
		DocumentName:   in.Repo + ":" + in.Version,
		DocumentNamespace: fmt.Sprintf("https://github.com/acme/registry-gateway/spdx/%s/%s/%s",
			in.Image.Name, in.Version, in.Digest.Hex),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "registry-gateway-release"}},
			Created:  in.Created.UTC().Format(time.RFC3339),
		},
		Packages: []*spdx.Package{{
			PackageName:             in.Repo,
			PackageSPDXIdentifier:   imageID,
			PackageVersion:          in.Version,
			PackageDownloadLocation: "NOASSERTION",
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: in.Digest.Hex}},
			PrimaryPackagePurpose:   "CONTAINER",
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: imagePURL,
			}},
		}},
		Relationships: []*spdx.Relationship{{
			RefA:         common.MakeDocElementID("", "DOCUMENT"),
			RefB:         common.MakeDocElementID("", string(imageID)),
			Relationship: common.TypeRelationshipDescribe,
		}},
	}
	known := map[common.ElementID]bool{imageID: true}
	addPackage := func(p *spdx.Package) {
		if !known[p.PackageSPDXIdentifier] {
			known[p.PackageSPDXIdentifier] = true
			doc.Packages = append(doc.Packages, p)
		}
	}
	relate := func(a, b common.ElementID, typ string) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(a)), RefB: common.MakeDocElementID("", string(b)), Relationship: typ,
		})
	}
	for _, b := range in.Binaries {
		bi := b.Info
		if bi == nil {
			return nil, fmt.Errorf("%s (%s): no build information", b.Name, platformString(b.Platform))
		}
		binID := common.ElementID(spdxID("Binary-" + b.Name + "-" + b.Platform.OS + "-" + b.Platform.Architecture + "-" + b.Platform.Variant))
		addPackage(&spdx.Package{
			PackageName:             b.Name,
			PackageSPDXIdentifier:   binID,
			PackageVersion:          in.Version,
			PackageFileName:         "/" + b.Name,
			PackageDownloadLocation: "NOASSERTION",
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: b.SHA256}},
			PrimaryPackagePurpose:   "APPLICATION",
			PackageComment:          buildComment(b.Platform, bi),
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
				Locator: goPURL(bi.Main.Path, in.Version, strings.TrimPrefix(strings.TrimPrefix(bi.Path, bi.Main.Path), "/"), b.Platform),
			}},
		})
		relate(imageID, binID, common.TypeRelationshipContains)

		goVersion := strings.TrimPrefix(bi.GoVersion, "go")
		stdID := common.ElementID(spdxID("Go-stdlib-" + goVersion))
		addPackage(&spdx.Package{
			PackageName:             "stdlib",
			PackageSPDXIdentifier:   stdID,
			PackageVersion:          bi.GoVersion,
			PackageDownloadLocation: "https://go.dev/dl/",
			PackageExternalReferences: []*spdx.PackageExternalReference{{
				Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
				Locator: packageurl.NewPackageURL("golang", "", "stdlib", goVersion, nil, "").ToString(),
			}},
		})
		relate(binID, stdID, common.TypeRelationshipStaticLink)

		for _, dep := range bi.Deps {
			m := dep
			if dep.Replace != nil {
				m = dep.Replace // what was compiled in
			}
			modID := common.ElementID(spdxID("Go-module-" + m.Path + "-" + m.Version))
			p := &spdx.Package{
				PackageName:             m.Path,
				PackageSPDXIdentifier:   modID,
				PackageVersion:          m.Version,
				PackageDownloadLocation: "NOASSERTION",
				PackageExternalReferences: []*spdx.PackageExternalReference{{
					Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL,
					Locator: goPURL(m.Path, m.Version, "", v1.Platform{}),
				}},
			}
			if dep.Replace != nil {
				p.PackageComment = fmt.Sprintf("replaces %s %s", dep.Path, dep.Version)
			}
			addPackage(p)
			relate(binID, modID, common.TypeRelationshipStaticLink)
		}
	}
	return doc, nil
}

// buildComment records how the binary was built, from its build settings:
// the toolchain, the platform, -trimpath, CGO_ENABLED, -ldflags and the VCS
// stamp when go build wrote one.
func buildComment(p v1.Platform, bi *debug.BuildInfo) string {
	parts := []string{"built by " + bi.GoVersion + " for " + platformString(p)}
	for _, s := range bi.Settings {
		switch s.Key {
		case "-trimpath", "CGO_ENABLED", "-ldflags", "-tags", "vcs.revision", "vcs.time", "vcs.modified":
			parts = append(parts, s.Key+"="+s.Value)
		}
	}
	return strings.Join(parts, "; ")
}

// goPURL is the package URL of a Go module (pkg:golang/<path>@<version>),
// with the package inside it as subpath and the platform as qualifiers.
func goPURL(modPath, version, subpath string, p v1.Platform) string {
	ns, name := "", modPath
	if i := strings.LastIndexByte(modPath, '/'); i >= 0 {
		ns, name = modPath[:i], modPath[i+1:]
	}
	var q packageurl.Qualifiers
	if p.OS != "" {
		q = packageurl.QualifiersFromMap(map[string]string{"goos": p.OS, "goarch": p.Architecture})
	}
	return packageurl.NewPackageURL("golang", ns, name, version, q, subpath).ToString()
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxID makes an SPDX element ID (after "SPDXRef-": letters, digits, "."
// and "-") from s.
func spdxID(s string) string {
	return strings.Trim(notIDChar.ReplaceAllString(s, "-"), "-")
}

// encodeSBOM is the document as indented JSON.
func encodeSBOM(doc *spdx.Document) ([]byte, error) {
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// sortedKeys of a map, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
