// Command composecheck loads stackmeter's docker-compose.yml with the Compose
// specification's own loader (compose-go, the library inside `docker compose`)
// for the default profile and each declared profile, and checks the project's
// rules for it: pinned images, health checks, restart policies and no
// committed secrets. It needs no Docker engine, so CI can run it anywhere.
//
// Usage:
//
//	go run . [-f ../../docker-compose.yml] [-json]
//
// It prints the services each profile starts and exits 1 with one line per
// problem when the file does not load or breaks a rule.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// dummyPrefix marks the values given to required variables, so a check can
// tell a value that came from the environment from one written in the file.
const dummyPrefix = "composecheck-dummy-"

// requiredVar finds `${NAME:?message}` and `${NAME?message}`; a `$$` before
// it is Compose's escape for a literal dollar and is excluded by the caller.
var requiredVar = regexp.MustCompile(`(\$*)\$\{([A-Za-z_][A-Za-z0-9_]*):?\?`)

// secretKey names environment variables whose values must never be literals:
// passwords, secrets, tokens, and STACKMETER_SINK_CLICKHOUSE, whose URL
// carries the ClickHouse password.
var secretKey = regexp.MustCompile(`(?i)password|secret|token|_SINK_CLICKHOUSE$`)

// profileReport is what -json prints for one profile.
type profileReport struct {
	Profile  string          `json:"profile"`
	Services []string        `json:"services"`
	Project  json.RawMessage `json:"project"`
}

// report is the whole -json document.
type report struct {
	File              string          `json:"file"`
	RequiredVariables []string        `json:"required_variables"`
	Profiles          []profileReport `json:"profiles"`
}

func main() {
	file := flag.String("f", "docker-compose.yml", "compose file to check")
	asJSON := flag.Bool("json", false, "print the loaded projects as JSON")
	flag.Parse()

	path, err := filepath.Abs(*file)
	if err != nil {
		fail(*file, []string{err.Error()})
	}
	result, problems := check(context.Background(), path)
	if len(problems) > 0 {
		fail(path, problems)
	}
	if *asJSON {
		encoder := json.NewEncoder(os.Stdout)
		encoder.SetIndent("", "  ")
		if err := encoder.Encode(result); err != nil {
			fail(path, []string{err.Error()})
		}
		return
	}
	printSummary(os.Stdout, result)
}

func fail(path string, problems []string) {
	for _, problem := range problems {
		fmt.Fprintf(os.Stderr, "composecheck: %s: %s\n", path, problem)
	}
	os.Exit(1)
}

func printSummary(out io.Writer, result report) {
	fmt.Fprintf(out, "%s: valid for every profile\n", result.File)
	for _, profile := range result.Profiles {
		fmt.Fprintf(out, "  %-10s %s\n", profileLabel(profile.Profile)+":",
			strings.Join(profile.Services, ", "))
	}
	fmt.Fprintf(out, "required variables: %s\n", strings.Join(result.RequiredVariables, ", "))
}

func profileLabel(profile string) string {
	if profile == "" {
		return "(default)"
	}
	return profile
}

// check loads the file once per profile and returns the report, or every
// problem found.
func check(ctx context.Context, path string) (report, []string) {
	result := report{File: path}
	content, err := os.ReadFile(path)
	if err != nil {
		return result, []string{err.Error()}
	}
	required := requiredVariables(string(content))
	result.RequiredVariables = required
	env := dummyEnvironment(required)

	var problems []string
	problems = append(problems, defaultedRequired(string(content), required)...)
	problems = append(problems, unguardedRequired(ctx, path, required)...)

	everything, err := load(ctx, path, env, []string{"*"})
	if err != nil {
		return result, append(problems, fmt.Sprintf("with every profile: %v", err))
	}
	problems = append(problems, serviceRules(everything)...)

	for _, profile := range append([]string{""}, declaredProfiles(everything)...) {
		var profiles []string
		if profile != "" {
			profiles = []string{profile}
		}
		project, err := load(ctx, path, env, profiles)
		if err != nil {
			problems = append(problems, fmt.Sprintf("profile %s: %v", profileLabel(profile), err))
			continue
		}
		if len(project.Services) == 0 {
			problems = append(problems, fmt.Sprintf("profile %s: starts no service", profileLabel(profile)))
		}
		dumped, err := project.MarshalJSON()
		if err != nil {
			problems = append(problems, fmt.Sprintf("profile %s: %v", profileLabel(profile), err))
			continue
		}
		names := project.ServiceNames()
		sort.Strings(names)
		result.Profiles = append(result.Profiles, profileReport{profile, names, dumped})
	}
	return result, problems
}

// load runs the real loader: interpolation, schema validation, normalization
// and the consistency checks (dependencies, volumes and networks that exist).
// Only env is visible to interpolation: no OS environment and no .env file,
// so the result does not depend on the machine that runs the check.
func load(ctx context.Context, path string, env map[string]string, profiles []string) (*types.Project, error) {
	pairs := make([]string, 0, len(env))
	for key, value := range env {
		pairs = append(pairs, key+"="+value)
	}
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithEnv(pairs),
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, err
	}
	return options.LoadProject(ctx)
}

func requiredVariables(content string) []string {
	seen := map[string]bool{}
	for _, match := range requiredVar.FindAllStringSubmatch(content, -1) {
		// An odd number of dollars before `{` is a real reference; `$${X:?}`
		// is a literal handed to the container's shell.
		if len(match[1])%2 == 0 {
			seen[match[2]] = true
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func dummyEnvironment(required []string) map[string]string {
	env := make(map[string]string, len(required))
	for _, name := range required {
		env[name] = dummyPrefix + name
	}
	return env
}

// defaultedRequired flags a required variable that some other reference gives
// a default (`${X:-value}`), which would put a value in the file after all.
func defaultedRequired(content string, required []string) []string {
	var problems []string
	for _, name := range required {
		pattern := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `:?[-+]`)
		if pattern.MatchString(content) {
			problems = append(problems, fmt.Sprintf(
				"variable %s is required in one place and has a default in another", name))
		}
	}
	return problems
}

// unguardedRequired proves each required variable really stops the load when
// it is missing, so no profile can start with an empty secret.
func unguardedRequired(ctx context.Context, path string, required []string) []string {
	var problems []string
	for _, name := range required {
		env := dummyEnvironment(required)
		delete(env, name)
		_, err := load(ctx, path, env, []string{"*"})
		if err == nil || !strings.Contains(err.Error(), name) {
			problems = append(problems, fmt.Sprintf(
				"variable %s looks required but the file loads without it (in a comment?)", name))
		}
	}
	return problems
}

func declaredProfiles(project *types.Project) []string {
	var profiles []string
	for _, service := range project.Services {
		for _, profile := range service.Profiles {
			if !slices.Contains(profiles, profile) {
				profiles = append(profiles, profile)
			}
		}
	}
	sort.Strings(profiles)
	return profiles
}

// serviceRules checks what the loader accepts but stackmeter's deployment
// promises: every service pins its image, restarts by policy, reports health,
// waits for healthy dependencies and takes secrets from the environment.
func serviceRules(project *types.Project) []string {
	var problems []string
	names := project.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		service := project.Services[name]
		for _, problem := range serviceProblems(service) {
			problems = append(problems, fmt.Sprintf("service %s: %s", name, problem))
		}
	}
	return problems
}

func serviceProblems(service types.ServiceConfig) []string {
	var problems []string
	if err := pinnedImage(service.Image); err != nil {
		problems = append(problems, err.Error())
	}
	if service.Restart == "" || service.Restart == types.RestartPolicyNo {
		problems = append(problems, "needs a restart policy (unless-stopped or on-failure)")
	}
	if service.HealthCheck == nil || service.HealthCheck.Disable || len(service.HealthCheck.Test) == 0 {
		problems = append(problems, "needs a healthcheck")
	}
	dependencies := make([]string, 0, len(service.DependsOn))
	for dependency := range service.DependsOn {
		dependencies = append(dependencies, dependency)
	}
	sort.Strings(dependencies)
	for _, dependency := range dependencies {
		condition := service.DependsOn[dependency].Condition
		if condition != types.ServiceConditionHealthy &&
			condition != types.ServiceConditionCompletedSuccessfully {
			problems = append(problems, fmt.Sprintf(
				"depends_on %s: condition must be service_healthy, got %s", dependency, condition))
		}
	}
	keys := make([]string, 0, len(service.Environment))
	for key := range service.Environment {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		value := service.Environment[key]
		if secretKey.MatchString(key) && value != nil && !strings.Contains(*value, dummyPrefix) {
			problems = append(problems, fmt.Sprintf(
				"environment %s: a secret must come from a required variable, not the file", key))
		}
	}
	return problems
}

func pinnedImage(image string) error {
	if image == "" {
		return errors.New("needs an image name with a tag")
	}
	if strings.Contains(image, "@") {
		return nil // pinned by digest
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return fmt.Errorf("image %s: pin a tag", image)
	}
	if tag := image[colon+1:]; tag == "latest" {
		return fmt.Errorf("image %s: pin a version, not latest", image)
	}
	return nil
}
