package relay

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestPartitionerMatchesJava pins the producer's partitioner to the Java
// client's: the expected values were computed with kafka-clients 4.3.1,
// BuiltInPartitioner.partitionForKey (the default for keyed records), and
// the hashes include the vectors of Kafka's own UtilsTest.testMurmur2.
func TestPartitionerMatchesJava(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key        string
		partitions map[int32]int32 // partition count -> partition
	}{
		{key: "", partitions: map[int32]int32{3: 0, 6: 3, 12: 9, 100: 81}},
		{key: "1", partitions: map[int32]int32{3: 0, 6: 3, 12: 3, 100: 59}},
		{key: "42", partitions: map[int32]int32{3: 1, 6: 4, 12: 4, 100: 72}},
		{key: "1042", partitions: map[int32]int32{3: 2, 6: 5, 12: 11, 100: 59}},
		{key: "user-7", partitions: map[int32]int32{3: 2, 6: 2, 12: 8, 100: 64}},
		{key: "product-12345", partitions: map[int32]int32{3: 0, 6: 3, 12: 3, 100: 47}},
		{key: "21", partitions: map[int32]int32{3: 0, 6: 0, 12: 0, 100: 40}},
		{key: "foobar", partitions: map[int32]int32{3: 0, 6: 0, 12: 6, 100: 66}},
		{key: "a-little-bit-long-string", partitions: map[int32]int32{3: 2, 6: 2, 12: 8, 100: 12}},
		{key: "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", partitions: map[int32]int32{3: 2, 6: 5, 12: 5, 100: 77}},
	}
	cfg := Config{Brokers: []string{"127.0.0.1:9092"}}
	cfg.setDefaults()
	partitioner := newSaramaConfig(&cfg).Producer.Partitioner("shop.cart.v1")
	if !partitioner.RequiresConsistency() {
		t.Error("partitioner does not require consistency: keys would move")
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			for n, want := range tt.partitions {
				got, err := partitioner.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(tt.key)}, n)
				if err != nil {
					t.Fatalf("Partition: %v", err)
				}
				if got != want {
					t.Errorf("key %q over %d partitions: got %d, want %d (Java)", tt.key, n, got, want)
				}
			}
		})
	}
}

func TestSaramaConfig(t *testing.T) {
	t.Parallel()
	cfg := Config{Brokers: []string{"127.0.0.1:9092"}, Compression: sarama.CompressionZSTD}
	cfg.setDefaults()
	sc := newSaramaConfig(&cfg)
	if err := sc.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", sc.Version, sarama.V4_3_1_0},
		{"idempotent", sc.Producer.Idempotent, true},
		{"acks", sc.Producer.RequiredAcks, sarama.WaitForAll},
		{"max open requests", sc.Net.MaxOpenRequests, 1},
		{"return successes", sc.Producer.Return.Successes, true},
		{"return errors", sc.Producer.Return.Errors, true},
		{"bounded retries", sc.Producer.Retry.Max > 0 && sc.Producer.Retry.Max <= 10, true},
		{"compression", sc.Producer.Compression, sarama.CompressionZSTD},
		{"client id", sc.ClientID, DefaultClientID},
		{"no auto topic creation", sc.Metadata.AllowAutoTopicCreation, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	brokers := []string{"127.0.0.1:9092"}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "brokers only", cfg: Config{Brokers: brokers}},
		{name: "topics", cfg: Config{Brokers: brokers, Topics: []TopicSpec{{Name: "a"}, {Name: "b", Partitions: 6, ReplicationFactor: -1}}}},
		{name: "no brokers", cfg: Config{}, wantErr: true},
		{name: "unnamed topic", cfg: Config{Brokers: brokers, Topics: []TopicSpec{{}}}, wantErr: true},
		{name: "negative partitions", cfg: Config{Brokers: brokers, Topics: []TopicSpec{{Name: "a", Partitions: -2}}}, wantErr: true},
		{name: "backoff upside down", cfg: Config{Brokers: brokers, MinBackoff: time.Minute, MaxBackoff: time.Second}, wantErr: true},
		{name: "negative batch", cfg: Config{Brokers: brokers, BatchSize: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.setDefaults()
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate = %v, want error %t", err, tt.wantErr)
			}
		})
	}
}
