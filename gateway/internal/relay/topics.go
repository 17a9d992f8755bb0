package relay

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/IBM/sarama"
)

// ensureTopics creates the topics of specs that do not exist yet. It uses
// the client's connection and leaves the client open.
func ensureTopics(client sarama.Client, specs []TopicSpec, log *slog.Logger) error {
	if len(specs) == 0 {
		return nil
	}
	// Closing the admin would close the client, so it is left to the GC.
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("relay: cluster admin: %w", err)
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("relay: list topics: %w", err)
	}
	var created []string
	for _, spec := range specs {
		if d, ok := existing[spec.Name]; ok {
			if d.NumPartitions != spec.Partitions {
				// Keys map to partitions by count, so say so, but do not
				// repartition a live topic behind its consumers' backs.
				log.Warn("kafka topic partition count differs from the configured one",
					slog.String("topic", spec.Name), slog.Int("partitions", int(d.NumPartitions)), slog.Int("configured", int(spec.Partitions)))
			}
			continue
		}
		err := admin.CreateTopic(spec.Name, &sarama.TopicDetail{
			NumPartitions:     spec.Partitions,
			ReplicationFactor: spec.ReplicationFactor,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("relay: create topic %s: %w", spec.Name, err)
		}
		created = append(created, spec.Name)
		log.Info("kafka topic created", slog.String("topic", spec.Name),
			slog.Int("partitions", int(spec.Partitions)), slog.Int("replication_factor", int(spec.ReplicationFactor)))
	}
	if len(created) > 0 {
		// Best effort: the producer refreshes on demand anyway.
		_ = client.RefreshMetadata(created...)
	}
	return nil
}
