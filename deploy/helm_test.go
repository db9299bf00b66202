package deploy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpedge/mcpedge/internal/ociimage"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir         = "helm/mcpedge"
	productionValues = "helm/mcpedge/ci/production-values.yaml"
)

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := cachedTool(t, "helm", "HELM_VERSION")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// No repositories, plugins or caches of the user's: a clean helm.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func TestHelmLint(t *testing.T) {
	for _, values := range [][]string{nil, {"-f", productionValues}} {
		out, err := helm(t, append([]string{"lint", "--strict", chartDir}, values...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Fatalf("helm lint %v:\n%s", values, out)
		}
	}
}

// rendered is a chart rendered by `helm template` and decoded strictly.
type rendered struct {
	deployment     *appsv1.Deployment
	configMap      *corev1.ConfigMap
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pvc            *corev1.PersistentVolumeClaim
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	networkPolicy  *networkingv1.NetworkPolicy
	serviceMonitor *monitoringv1.ServiceMonitor
	prometheusRule *monitoringv1.PrometheusRule
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// render runs helm template and decodes every manifest strictly into its
// Kubernetes API type: a field the API does not know fails the test.
func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "mcp"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r rendered
	for _, doc := range docSep.Split(out, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("manifest without apiVersion/kind: %v\n%s", err, doc)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			r.deployment = &appsv1.Deployment{}
			obj = r.deployment
		case "v1 ConfigMap":
			r.configMap = &corev1.ConfigMap{}
			obj = r.configMap
		case "v1 Service":
			r.service = &corev1.Service{}
			obj = r.service
		case "v1 ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			obj = r.serviceAccount
		case "v1 PersistentVolumeClaim":
			r.pvc = &corev1.PersistentVolumeClaim{}
			obj = r.pvc
		case "policy/v1 PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			obj = r.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			obj = r.hpa
		case "networking.k8s.io/v1 NetworkPolicy":
			r.networkPolicy = &networkingv1.NetworkPolicy{}
			obj = r.networkPolicy
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.serviceMonitor = &monitoringv1.ServiceMonitor{}
			obj = r.serviceMonitor
		case "monitoring.coreos.com/v1 PrometheusRule":
			r.prometheusRule = &monitoringv1.PrometheusRule{}
			obj = r.prometheusRule
		default:
			t.Fatalf("the chart renders a %s %s the test does not know: add it", tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", tm.APIVersion, tm.Kind, err, doc)
		}
	}
	if r.deployment == nil || r.configMap == nil || r.service == nil {
		t.Fatalf("the chart rendered no Deployment, ConfigMap or Service:\n%s", out)
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// checkCommon checks what every rendering must have: probes, a non-root
// read-only security context, resources, the configuration mounted where
// the command reads it, and selectors that select the pods.
func checkCommon(t *testing.T, r rendered) {
	t.Helper()
	d := r.deployment
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector, pod.Labels)
	}
	if !labels.SelectorFromSet(r.service.Spec.Selector).Matches(podLabels) {
		t.Errorf("the Service's selector %v does not select the pods", r.service.Spec.Selector)
	}
	if r.pdb != nil {
		if s, err := metav1.LabelSelectorAsSelector(r.pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
			t.Errorf("the PodDisruptionBudget does not select the pods")
		}
	}
	if pod.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a changed ConfigMap would not roll the pods")
	}
	ps := pod.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != ociimage.UID || ps.FSGroup == nil || *ps.FSGroup != ociimage.GID {
		t.Errorf("pod security context %+v: want non-root as the image's user %d and fsGroup %d", ps, ociimage.UID, ociimage.GID)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container security context %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v: want GET %s on port http", name, p, path)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("startup", c.StartupProbe, "/healthz")
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || fmt.Sprintf("%d/tcp", c.Ports[0].ContainerPort) != ociimage.Port {
		t.Errorf("ports %+v: want http on the image's %s", c.Ports, ociimage.Port)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want a CPU request and a memory limit", c.Resources)
	}
	if !slices.Equal(c.Args, []string{"serve", "--config", ociimage.ConfigPath}) {
		t.Errorf("args %q: want the image's configuration path", c.Args)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	cfgDir := filepath.Dir(ociimage.ConfigPath)
	if m, ok := mounts[cfgDir]; !ok || vols[m.Name].ConfigMap == nil || vols[m.Name].ConfigMap.Name != r.configMap.Name {
		t.Errorf("%s is not the ConfigMap %s", cfgDir, r.configMap.Name)
	}
	if _, ok := r.configMap.Data[filepath.Base(ociimage.ConfigPath)]; !ok {
		t.Errorf("the ConfigMap has no %s", filepath.Base(ociimage.ConfigPath))
	}
	for _, p := range []string{ociimage.DataDir, "/tmp"} {
		if _, ok := mounts[p]; !ok {
			t.Errorf("%s is not mounted: the root filesystem is read-only", p)
		}
	}
	if r.serviceAccount != nil && (pod.Spec.ServiceAccountName != r.serviceAccount.Name) {
		t.Errorf("pods run as %q, the chart creates %q", pod.Spec.ServiceAccountName, r.serviceAccount.Name)
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pods mount a service account token they never use")
	}
}

// configCheck runs `mcpedge config check` on the rendered configuration,
// with env set as the pod's environment would be.
func configCheck(t *testing.T, r rendered, env ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mcpedge.toml")
	if err := os.WriteFile(p, []byte(r.configMap.Data["mcpedge.toml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hostBinary(t), "config", "check", "--config", p)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mcpedge config check of the chart's configuration: %v\n%s\n%s", err, out, r.configMap.Data["mcpedge.toml"])
	}
	return r.configMap.Data["mcpedge.toml"]
}

func envNames(c corev1.Container) map[string]*corev1.EnvVarSource {
	m := map[string]*corev1.EnvVarSource{}
	for _, e := range c.Env {
		m[e.Name] = e.ValueFrom
	}
	return m
}

func TestHelmTemplateDefault(t *testing.T) {
	r := render(t)
	checkCommon(t, r)
	d := r.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %v strategy %q: want 1 replica recreated (its volume is ReadWriteOnce)", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if r.pvc == nil {
		t.Fatal("no PersistentVolumeClaim for /data")
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "data" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != r.pvc.Name) {
			t.Errorf("/data is %+v, not the claim %s", v, r.pvc.Name)
		}
	}
	if r.hpa != nil || r.serviceMonitor != nil || r.prometheusRule != nil || r.networkPolicy != nil {
		t.Error("an optional object is rendered by default")
	}
	if r.pdb == nil {
		t.Error("no PodDisruptionBudget")
	}
	env := envNames(d.Spec.Template.Spec.Containers[0])
	for _, n := range []string{"MCPEDGE_DATABASE_URL", "MCPEDGE_REDIS_URL", "MCPEDGE_STORE_KEY", "MCPEDGE_ADMIN_KEY"} {
		if _, ok := env[n]; ok {
			t.Errorf("%s set although not configured", n)
		}
	}
	toml := configCheck(t, r)
	for _, want := range []string{`listen = "0.0.0.0:8080"`, `data_dir = "/data"`} {
		if !strings.Contains(toml, want) {
			t.Errorf("configuration lacks %s:\n%s", want, toml)
		}
	}
}

func TestHelmTemplateProduction(t *testing.T) {
	r := render(t, "-f", productionValues)
	checkCommon(t, r)
	d := r.deployment
	if d.Spec.Replicas != nil {
		t.Errorf("replicas %d set: the HorizontalPodAutoscaler owns it", *d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		t.Error("strategy Recreate without a ReadWriteOnce volume: rolling updates would keep serving")
	}
	if r.pvc != nil {
		t.Error("a PersistentVolumeClaim with persistence off")
	}
	if r.hpa == nil || r.hpa.Spec.ScaleTargetRef.Name != d.Name || r.hpa.Spec.MinReplicas == nil || *r.hpa.Spec.MinReplicas != 3 {
		t.Errorf("HorizontalPodAutoscaler %+v: want one scaling %s from 3", r.hpa, d.Name)
	}
	if r.pdb == nil || r.pdb.Spec.MaxUnavailable == nil || r.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %+v: want maxUnavailable 1", r.pdb)
	}
	env := envNames(d.Spec.Template.Spec.Containers[0])
	for name, secret := range map[string]string{
		"MCPEDGE_DATABASE_URL": "mcpedge-db", "MCPEDGE_REDIS_URL": "mcpedge-redis",
		"MCPEDGE_STORE_KEY": "mcpedge-store-key", "MCPEDGE_ADMIN_KEY": "mcpedge-bootstrap", "GITHUB_TOKEN": "mcpedge-upstreams",
	} {
		src := env[name]
		if src == nil || src.SecretKeyRef == nil || src.SecretKeyRef.Name != secret {
			t.Errorf("%s: %+v, want a reference to the Secret %s", name, src, secret)
		}
	}
	toml := configCheck(t, r, "MCPEDGE_DATABASE_URL=postgres://mcpedge:secret@db.example.com:5432/mcpedge",
		"MCPEDGE_REDIS_URL=redis://redis.example.com:6379/0", "GITHUB_TOKEN=ghp_test")
	for _, want := range []string{`url = "${MCPEDGE_DATABASE_URL}"`, `url = "${MCPEDGE_REDIS_URL}"`, "max_entries = 50000", "failures = 5"} {
		if !strings.Contains(toml, want) {
			t.Errorf("configuration lacks %s:\n%s", want, toml)
		}
	}

	sm := r.serviceMonitor
	if sm == nil || len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor %+v: want one endpoint", sm)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != "http" || ep.Path != "/metrics" || ep.Authorization == nil || ep.Authorization.Credentials == nil || ep.Authorization.Credentials.Name != "mcpedge-metrics" {
		t.Errorf("ServiceMonitor endpoint %+v: want /metrics on http with the bearer key of mcpedge-metrics", ep)
	}
	if s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector); err != nil || !s.Matches(labels.Set(r.service.Labels)) {
		t.Errorf("the ServiceMonitor does not select the Service")
	}

	// The PrometheusRule carries deploy/prometheus's rules, unchanged.
	if r.prometheusRule == nil {
		t.Fatal("no PrometheusRule")
	}
	var want monitoringv1.PrometheusRuleSpec
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, r.prometheusRule.Spec); diff != "" {
		t.Errorf("PrometheusRule mismatch (-deploy/prometheus +chart):\n%s", diff)
	}

	np := r.networkPolicy
	if np == nil || len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 2 || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Fatalf("NetworkPolicy %+v: want ingress from two namespaces and egress rules", np)
	}
	if s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("the NetworkPolicy does not select the pods")
	}
	dns := false
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			dns = dns || (p.Port != nil && p.Port.IntValue() == 53)
		}
	}
	if !dns {
		t.Error("egress is limited but DNS is not allowed")
	}
}

// The chart refuses values that would deploy something broken.
func TestHelmRefusesBrokenValues(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"replicas without a shared store", []string{"replicaCount=3", "persistence.enabled=false"}, "need a shared store"},
		{"autoscaling without a shared store", []string{"autoscaling.enabled=true"}, "need a shared store"},
		{"replicas on one ReadWriteOnce volume", []string{"replicaCount=2", "postgresql.enabled=true", "postgresql.urlSecret.name=db", "secrets.storeKey.name=k"}, "ReadWriteOnce"},
		{"postgresql without its Secret", []string{"postgresql.enabled=true"}, "postgresql.urlSecret.name"},
		{"postgresql without a store key", []string{"postgresql.enabled=true", "postgresql.urlSecret.name=db"}, "secrets.storeKey.name"},
		{"redis without its Secret", []string{"redis.enabled=true"}, "redis.urlSecret.name"},
		{"ServiceMonitor without a key", []string{"serviceMonitor.enabled=true"}, "bearerTokenSecret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "rel", chartDir}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			_, err := helm(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("helm template --set %v: %v, want an error about %q", tt.set, err, tt.want)
			}
		})
	}
}

// The chart's copy of the rules is deploy/prometheus's file (Helm cannot
// read files outside the chart).
func TestHelmRulesCopyIsCurrent(t *testing.T) {
	a, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files/mcpedge.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s/files/mcpedge.rules.yml differs from %s: cp %s %s/files/", chartDir, rulesFile, rulesFile, chartDir)
	}
}

// TestHelmTemplateTLS: with tls.enabled the gateway terminates TLS with the
// certificate of a mounted kubernetes.io/tls Secret (and checks client
// certificates against a mounted CA), its probes and the ServiceMonitor
// speak HTTPS, and the rendered configuration passes `mcpedge config check`
// with real files at the mounted paths.
func TestHelmTemplateTLS(t *testing.T) {
	r := render(t, "--set", "tls.enabled=true", "--set", "tls.secretName=gw-tls",
		"--set", "tls.clientCA.secretName=gw-client-ca", "--set", "tls.clientCA.clientAuth=required",
		"--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.bearerTokenSecret.name=m",
		"--set", "serviceMonitor.tlsCA.name=gw-tls", "--set", "serviceMonitor.tlsCA.key=ca.crt")
	checkCommon(t, r)
	c := r.deployment.Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("probe %+v: want HTTPS", p)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly && (m.Name == "tls" || m.Name == "client-ca") {
			t.Errorf("volume %s mounted writable", m.Name)
		}
		mounts[m.Name] = m.MountPath
	}
	secrets := map[string]string{}
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if secrets["tls"] != "gw-tls" || secrets["client-ca"] != "gw-client-ca" || mounts["tls"] == "" || mounts["client-ca"] == "" {
		t.Fatalf("secret volumes %v mounted at %v: want gw-tls and gw-client-ca", secrets, mounts)
	}
	toml := r.configMap.Data["mcpedge.toml"]
	for _, want := range []string{
		`cert_file = "` + mounts["tls"] + `/tls.crt"`, `key_file = "` + mounts["tls"] + `/tls.key"`,
		`client_ca_file = "` + mounts["client-ca"] + `/ca.crt"`, `client_auth = "required"`, `min_version = "1.3"`,
	} {
		if !strings.Contains(toml, want) {
			t.Errorf("configuration lacks %s:\n%s", want, toml)
		}
	}
	// The same configuration with the mounts' files made here.
	dir := t.TempDir()
	writeTestCert(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	ca, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	local := r
	cm := *r.configMap
	cm.Data = map[string]string{"mcpedge.toml": strings.NewReplacer(mounts["tls"], dir, mounts["client-ca"], dir).Replace(toml)}
	local.configMap = &cm
	configCheck(t, local)

	ep := r.serviceMonitor.Spec.Endpoints[0]
	if ep.Scheme == nil || *ep.Scheme != "https" || ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil || ep.TLSConfig.CA.Secret.Name != "gw-tls" {
		t.Errorf("ServiceMonitor endpoint %+v: want https verified with gw-tls's ca.crt", ep)
	}
	if _, err := helm(t, "template", "rel", chartDir, "--set", "tls.enabled=true"); err == nil {
		t.Error("tls.enabled without tls.secretName was rendered")
	}
	if _, err := helm(t, "template", "rel", chartDir, "--set", "tls.clientCA.secretName=x"); err == nil {
		t.Error("a client CA without tls.enabled was rendered")
	}
}

// writeTestCert writes a self-signed certificate for localhost and its key.
func writeTestCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
